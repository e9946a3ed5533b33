"""gRPC method table of ``sidero.discovery.server.Cluster`` (spec §3.1).

Owns the method paths and (de)serializers, a typed client stub over a
``grpc.aio.Channel`` and the generic handler that registers a servicer.  We
do not generate ``cluster_pb2_grpc`` (see proto/generate.sh): it carries a hard
grpcio version gate and no types.  No logic here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from kubespan.discovery.proto import cluster_pb2 as pb

SERVICE = "sidero.discovery.server.Cluster"


def path(method: str) -> str:
    return f"/{SERVICE}/{method}"


_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


def _unary(
    channel: grpc.aio.Channel, method: str, request: type[_Req], response: type[_Resp]
) -> grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp]:
    return channel.unary_unary(
        path(method), request_serializer=request.SerializeToString, response_deserializer=response.FromString
    )


class ClusterStub:
    """Client side of the five RPCs."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.Hello = _unary(channel, "Hello", pb.HelloRequest, pb.HelloResponse)
        self.AffiliateUpdate = _unary(
            channel, "AffiliateUpdate", pb.AffiliateUpdateRequest, pb.AffiliateUpdateResponse
        )
        self.AffiliateDelete = _unary(
            channel, "AffiliateDelete", pb.AffiliateDeleteRequest, pb.AffiliateDeleteResponse
        )
        self.List = _unary(channel, "List", pb.ListRequest, pb.ListResponse)
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


def _unary_handler(
    behavior: Callable[[_Req, Any], Awaitable[_Resp]], request: type[_Req], response: type[_Resp]
) -> grpc.RpcMethodHandler[_Req, _Resp]:
    return grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=request.FromString, response_serializer=response.SerializeToString
    )


def generic_handler(servicer: ClusterServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The handler to pass to ``server.add_generic_rpc_handlers``."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Hello": _unary_handler(servicer.Hello, pb.HelloRequest, pb.HelloResponse),
        "AffiliateUpdate": _unary_handler(
            servicer.AffiliateUpdate, pb.AffiliateUpdateRequest, pb.AffiliateUpdateResponse
        ),
        "AffiliateDelete": _unary_handler(
            servicer.AffiliateDelete, pb.AffiliateDeleteRequest, pb.AffiliateDeleteResponse
        ),
        "List": _unary_handler(servicer.List, pb.ListRequest, pb.ListResponse),
        "Watch": grpc.unary_stream_rpc_method_handler(
            servicer.Watch,
            request_deserializer=pb.WatchRequest.FromString,
            response_serializer=_serialize_watch,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
