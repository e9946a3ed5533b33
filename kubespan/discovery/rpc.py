"""gRPC method table of ``sidero.discovery.server.Cluster`` (spec §3.1).

Owns the method paths and (de)serializers, a typed client stub over a
``grpc.aio.Channel`` and the generic handler that registers a servicer.  We
do not generate ``cluster_pb2_grpc`` (see proto/generate.sh): it carries a hard
grpcio version gate and no types.  No logic here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import grpc
import grpc.aio

from kubespan.discovery.proto import cluster_pb2 as pb

SERVICE = "sidero.discovery.server.Cluster"


def path(method: str) -> str:
    return f"/{SERVICE}/{method}"


class ClusterStub:
    """Client side of the five RPCs."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.Hello: grpc.aio.UnaryUnaryMultiCallable[pb.HelloRequest, pb.HelloResponse] = (
            channel.unary_unary(
                path("Hello"),
                request_serializer=pb.HelloRequest.SerializeToString,
                response_deserializer=pb.HelloResponse.FromString,
            )
        )
        self.AffiliateUpdate: grpc.aio.UnaryUnaryMultiCallable[
            pb.AffiliateUpdateRequest, pb.AffiliateUpdateResponse
        ] = channel.unary_unary(
            path("AffiliateUpdate"),
            request_serializer=pb.AffiliateUpdateRequest.SerializeToString,
            response_deserializer=pb.AffiliateUpdateResponse.FromString,
        )
        self.AffiliateDelete: grpc.aio.UnaryUnaryMultiCallable[
            pb.AffiliateDeleteRequest, pb.AffiliateDeleteResponse
        ] = channel.unary_unary(
            path("AffiliateDelete"),
            request_serializer=pb.AffiliateDeleteRequest.SerializeToString,
            response_deserializer=pb.AffiliateDeleteResponse.FromString,
        )
        self.List: grpc.aio.UnaryUnaryMultiCallable[pb.ListRequest, pb.ListResponse] = (
            channel.unary_unary(
                path("List"),
                request_serializer=pb.ListRequest.SerializeToString,
                response_deserializer=pb.ListResponse.FromString,
            )
        )
        self.Watch: grpc.aio.UnaryStreamMultiCallable[pb.WatchRequest, pb.WatchResponse] = (
            channel.unary_stream(
                path("Watch"),
                request_serializer=pb.WatchRequest.SerializeToString,
                response_deserializer=pb.WatchResponse.FromString,
            )
        )


class ClusterServicer(Protocol):
    """Server side of the five RPCs."""

    def Hello(
        self, request: pb.HelloRequest, context: grpc.aio.ServicerContext[pb.HelloRequest, pb.HelloResponse]
    ) -> Awaitable[pb.HelloResponse]: ...

    def AffiliateUpdate(
        self,
        request: pb.AffiliateUpdateRequest,
        context: grpc.aio.ServicerContext[pb.AffiliateUpdateRequest, pb.AffiliateUpdateResponse],
    ) -> Awaitable[pb.AffiliateUpdateResponse]: ...

    def AffiliateDelete(
        self,
        request: pb.AffiliateDeleteRequest,
        context: grpc.aio.ServicerContext[pb.AffiliateDeleteRequest, pb.AffiliateDeleteResponse],
    ) -> Awaitable[pb.AffiliateDeleteResponse]: ...

    def List(
        self, request: pb.ListRequest, context: grpc.aio.ServicerContext[pb.ListRequest, pb.ListResponse]
    ) -> Awaitable[pb.ListResponse]: ...

    def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext[pb.WatchRequest, pb.WatchResponse]
    ) -> AsyncIterator[pb.WatchResponse | bytes]: ...


def _serialize_watch(message: pb.WatchResponse | bytes) -> bytes:
    """Watch responses may arrive pre-serialized (one encoding shared by all watchers)."""
    if isinstance(message, bytes):
        return message
    return message.SerializeToString()


def generic_handler(servicer: ClusterServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The handler to pass to ``server.add_generic_rpc_handlers``."""
    unary = grpc.unary_unary_rpc_method_handler
    handlers = {
        "Hello": unary(
            servicer.Hello,
            request_deserializer=pb.HelloRequest.FromString,
            response_serializer=pb.HelloResponse.SerializeToString,
        ),
        "AffiliateUpdate": unary(
            servicer.AffiliateUpdate,
            request_deserializer=pb.AffiliateUpdateRequest.FromString,
            response_serializer=pb.AffiliateUpdateResponse.SerializeToString,
        ),
        "AffiliateDelete": unary(
            servicer.AffiliateDelete,
            request_deserializer=pb.AffiliateDeleteRequest.FromString,
            response_serializer=pb.AffiliateDeleteResponse.SerializeToString,
        ),
        "List": unary(
            servicer.List,
            request_deserializer=pb.ListRequest.FromString,
            response_serializer=pb.ListResponse.SerializeToString,
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            servicer.Watch,
            request_deserializer=pb.WatchRequest.FromString,
            response_serializer=_serialize_watch,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
