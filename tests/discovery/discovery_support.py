"""Helpers for the discovery tests: loopback servers, clients, certificates.

Real grpc.aio servers on 127.0.0.1 port 0 and real clients; every wait is
bounded.  Tests drive coroutines with ``run()`` (asyncio.run + a timeout)
because pytest-asyncio is not installed.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubespan.discovery.client import ClientTimers, DiscoveryClient, ServiceEndpoint
from kubespan.discovery.protocol import Affiliate, ControlPlane, Endpoint, KubeSpan
from kubespan.discovery.rpc import ClusterStub
from kubespan.discovery.service import DiscoveryServer, ServiceConfig, serve

T = TypeVar("T")

FAST = ClientTimers(refresh_interval=30.0, backoff_base=0.05, backoff_max=0.5, jitter=0.5,
                    hello_timeout=5.0, rpc_timeout=5.0)
SECRET = bytes(range(32))


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def config(**kw: Any) -> ServiceConfig:
    kw.setdefault("listen", "127.0.0.1:0")
    kw.setdefault("snapshot_path", None)
    kw.setdefault("rate_limit", 0.0)
    return ServiceConfig(**kw)


async def start(**kw: Any) -> DiscoveryServer:
    return await serve(config(**kw))


def affiliate(node_id: str, n: int = 1, **kw: Any) -> Affiliate:
    kw.setdefault("hostname", f"host-{node_id}.example")
    return Affiliate(
        node_id=node_id,
        addresses=(ipaddress.ip_address(f"10.0.0.{n}"),),
        nodename=f"node-{node_id}",
        machine_type="worker",
        operating_system="Talos (v1.13.0)",
        kubespan=KubeSpan(
            public_key="PLPNBddmTgHJhtw0vxltq1ZBdPP9RNOEUd5JjJZzBRY=",
            address=ipaddress.ip_address(f"fd7f:175a:b97c:5602::{n}"),
            additional_addresses=(ipaddress.ip_interface(f"10.244.{n}.1/24"),),
        ),
        control_plane=ControlPlane(6443) if n == 1 else None,
        **kw,
    )


def endpoint(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(ipaddress.ip_address(host.strip("[]")), int(port))


def client(server: DiscoveryServer, cluster: str, node: str, **kw: Any) -> DiscoveryClient:
    kw.setdefault("timers", FAST)
    ep = kw.pop("endpoint", None) or ServiceEndpoint("127.0.0.1", server.port, insecure=True)
    return DiscoveryClient(ep, cluster, kw.pop("secret", SECRET), node, **kw)


def stub(port: int) -> tuple[grpc.aio.Channel, ClusterStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return channel, ClusterStub(channel)


async def gather_close(*items: Awaitable[None]) -> None:
    await asyncio.gather(*items, return_exceptions=True)


def self_signed(tmp: Path) -> tuple[str, str]:
    """A self-signed EC certificate for localhost/127.0.0.1; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def parse_or_usage(argv: list[str]) -> Any:
    """``command.parse_args(argv)``, or None when it exits (only with 0 or 2, never with a traceback)."""
    import contextlib
    import io

    from kubespan.discovery.command import parse_args

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parse_args(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2)
        assert "Traceback" not in err.getvalue()
        return None
