"""The highly available discovery service as operators run it: ``--etcd-*`` flags,
replica processes, etcd with TLS client certificates and with username/password.

Real etcd (Debian's etcd-server) on loopback, real service processes and
clients; flag parsing as data.  Every process is killed on failure.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from discovery_support import FAST, SECRET, affiliate, run, start, stub
from etcd_support import EtcdCluster, etcd1, free_port  # noqa: F401 - fixture
from localports import wait_listening

from kubespan.discovery.client import DiscoveryClient, ServiceEndpoint
from kubespan.discovery.command import config_from_args, parse_args
from kubespan.discovery.etcd import EtcdClient, EtcdConfig
from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.proto import etcd_pb2 as epb


def test_etcd_flags_map_into_the_config(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    args = parse_args(["--etcd-endpoints", "https://10.0.0.1:2379, 10.0.0.2:2379", "--etcd-prefix", "/p/",
                       "--etcd-cacert", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem",
                       "--etcd-user", "disco", "--etcd-password-file", str(pw), "--etcd-timeout", "500ms"])
    config = config_from_args(args)
    assert config.etcd == EtcdConfig(("https://10.0.0.1:2379", "10.0.0.2:2379"), "ca.pem", "c.pem", "k.pem",
                                     "disco", "s3cret", 0.5)
    assert config.etcd_prefix == "/p/"
    assert "s3cret" not in repr(config)
    assert config_from_args(parse_args([])).etcd is None


@pytest.mark.parametrize("argv", [
    ["--etcd-endpoints", ""],
    ["--etcd-endpoints", "ftp://x:1"],
    ["--etcd-endpoints", "http://x:99999"],
    ["--etcd-endpoints", "http://x:1/path"],
    ["--etcd-cacert", "ca.pem"],
    ["--etcd-endpoints", "x:1", "--etcd-cert", "c.pem"],
    ["--etcd-endpoints", "x:1", "--etcd-password-file", "pw"],
    ["--etcd-endpoints", "x:1", "--etcd-prefix", ""],
])
def test_bad_etcd_flags_are_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2


def test_user_without_a_password_fails_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBESPAN_ETCD_PASSWORD", raising=False)
    proc = subprocess.run([sys.executable, "-m", "kubespan", "discovery-service", "--addr", "127.0.0.1:0", "-metrics-addr=",
                           "--etcd-endpoints", "127.0.0.1:1", "--etcd-user", "u"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "KUBESPAN_ETCD_PASSWORD" in proc.stderr


# --- replica processes --------------------------------------------------------------


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
            p.wait(10)


def test_two_replica_processes_join_clients_split_across_them(
        etcd1: EtcdCluster, tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    run(etcd1.wait_ready())
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        log = tmp_path / f"replica{i}.log"
        with open(log, "wb") as f:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "kubespan", "discovery-service", "-addr", f"127.0.0.1:{port}", "-metrics-addr=",
                 "--etcd-endpoints", ",".join(etcd1.endpoints), "--etcd-prefix", "/ha-test/", "-debug"],
                stdout=subprocess.DEVNULL, stderr=f))
        wait_listening(procs[-1], port, log)

    async def go() -> None:
        a = DiscoveryClient(ServiceEndpoint("127.0.0.1", ports[0], insecure=True), "cl", SECRET, "a", timers=FAST)
        b = DiscoveryClient(ServiceEndpoint("127.0.0.1", ports[1], insecure=True), "cl", SECRET, "b", timers=FAST)
        try:
            for i, c in enumerate((a, b), 1):
                c.set_local(affiliate(c.node_id, i), [])
                await c.start()
            assert await a.wait_for(lambda c: "b" in c.affiliates(), 20)
            assert await b.wait_for(lambda c: "a" in c.affiliates(), 20)
            await b.close(delete=True)
            assert await a.wait_for(lambda c: "b" not in c.affiliates(), 20)
        finally:
            await a.close(delete=False)
            await b.close(delete=False)

    run(go(), 60)
    text = (tmp_path / "replica0.log").read_text()
    assert "state in etcd at" in text and "snapshots off" in text


# --- TLS and authentication -------------------------------------------------------------


def _cert(tmp: Path, name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> Path:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    path = tmp / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp / f"{name}-key.pem").chmod(0o600)
    return path


def pki(tmp: Path) -> tuple[Path, Path, Path]:
    """CA, server (etcd) and client certificates; returns the ca/server/client cert paths."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])  # = the CA subject _cert builds
    ca = _cert(tmp, "ca", ca_key, ca_name, ca_key, True)
    server = _cert(tmp, "server", ec.generate_private_key(ec.SECP256R1()), ca_name, ca_key, False)
    client = _cert(tmp, "client", ec.generate_private_key(ec.SECP256R1()), ca_name, ca_key, False)
    return ca, server, client


def test_etcd_with_tls_client_certificates(tmp_path: Path) -> None:
    ca, server, client = pki(tmp_path)
    cluster = EtcdCluster(tmp_path, 1, scheme="https", extra=(
        "--cert-file", str(server), "--key-file", str(tmp_path / "server-key.pem"),
        "--trusted-ca-file", str(ca), "--client-cert-auth"))
    cluster.start_all()
    good = EtcdConfig(cluster.endpoints, str(ca), str(client), str(tmp_path / "client-key.pem"))

    async def go() -> None:
        await cluster.wait_ready(good)
        servers = []
        try:
            servers.append(with_cert := await start(etcd=good))
            servers.append(without := await start(etcd=EtcdConfig(cluster.endpoints, str(ca))))
            assert with_cert.etcd is not None
            await asyncio.wait_for(with_cert.etcd.synced.wait(), 15)
            channel, s = stub(with_cert.port)
            await s.AffiliateUpdate(pb.AffiliateUpdateRequest(cluster_id="c", affiliate_id="n",
                                                              affiliate_data=b"x"))
            assert [a.id for a in (await s.List(pb.ListRequest(cluster_id="c"))).affiliates] == ["n"]
            await channel.close(None)
            channel, s = stub(without.port)  # etcd refuses a client without a certificate
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await s.List(pb.ListRequest(cluster_id="c"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            await channel.close(None)
        finally:
            for server in servers:
                await server.stop(0)

    try:
        run(go(), 60)
    finally:
        cluster.close()


async def enable_auth(endpoints: tuple[str, ...], password: str) -> None:
    client = EtcdClient(EtcdConfig(endpoints))
    try:
        await client.call("/etcdserverpb.Auth/UserAdd", epb.AuthUserAddRequest(name="root", password=password),
                          epb.AuthUserAddResponse)
        await client.call("/etcdserverpb.Auth/UserGrantRole", epb.AuthUserGrantRoleRequest(user="root", role="root"),
                          epb.AuthUserGrantRoleResponse)
        await client.call("/etcdserverpb.Auth/AuthEnable", epb.AuthEnableRequest(), epb.AuthEnableResponse)
    finally:
        await client.close()


def test_etcd_with_username_and_password(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        await enable_auth(etcd1.endpoints, "pw-123")
        servers = []
        try:
            servers.append(good := await start(etcd=EtcdConfig(etcd1.endpoints, username="root", password="pw-123")))
            servers.append(anonymous := await start(etcd=EtcdConfig(etcd1.endpoints)))
            servers.append(wrong := await start(etcd=EtcdConfig(etcd1.endpoints, username="root", password="nope")))
            assert good.etcd is not None
            await asyncio.wait_for(good.etcd.synced.wait(), 15)
            assert "pw-123" not in repr(good.etcd.client) + repr(good.config)
            channel, s = stub(good.port)
            await s.AffiliateUpdate(pb.AffiliateUpdateRequest(cluster_id="c", affiliate_id="n",
                                                              affiliate_data=b"x"))
            assert [a.id for a in (await s.List(pb.ListRequest(cluster_id="c"))).affiliates] == ["n"]
            await channel.close(None)
            for server in (anonymous, wrong):
                channel, s = stub(server.port)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await s.List(pb.ListRequest(cluster_id="c"))
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                await channel.close(None)
        finally:
            for server in servers:
                await server.stop(0)

    run(go(), 60)
