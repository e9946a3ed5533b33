"""The affiliate payload and its client-side encryption (spec/kubespan.md §3.2, §3.3).

Owns: the typed model of ``sidero.discovery.client.Affiliate``/``Endpoint``
(plus ``KubeSpan.relay``, a field of our own that Talos skips as unknown),
its conversion to and from protobuf, and the two ciphers of discovery-client:

* affiliate data: AES-256-GCM, key = the 32-byte cluster secret, random
  12-byte nonce, no AAD; wire form ``nonce ‖ ciphertext ‖ tag``;
* each endpoint: ``[len] ‖ Endpoint protobuf ‖ zero pad to 16n``, raw
  AES-ECB (deterministic on purpose: the server deduplicates endpoints).

Pure: no I/O, no clock, no RNG — the nonce is passed in.  Every decode or
decrypt failure of remote bytes raises ``DiscoveryPayloadError`` and nothing
else.  Key bytes never appear in reprs or messages.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError

from kubespan.discovery.errors import DiscoveryPayloadError
from kubespan.discovery.proto import affiliate_pb2 as pb

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
ENDPOINT_BLOCK = 16

MACHINE_TYPES = ("controlplane", "worker", "init", "unknown")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A WireGuard endpoint ``ip:port``."""

    ip: IPAddress
    port: int

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port out of range: {self.port}")

    def __str__(self) -> str:
        if self.ip.version == 6:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class KubeSpan:
    """The KubeSpan part of an affiliate (omitted on the wire without a public key)."""

    public_key: str
    address: IPAddress | None = None
    additional_addresses: tuple[IPInterface, ...] = ()
    exclude_advertised_networks: tuple[IPInterface, ...] = ()
    relay: bool = False
    """Our field (``KubeSpan.relay = 20000``, affiliate.proto): the member serves as a relay; Talos
    skips it as an unknown field, and an affiliate without it is ``False``."""


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """Control-plane data: the API server's local port."""

    api_server_port: int


@dataclass(frozen=True, slots=True)
class Affiliate:
    """One node as announced through the discovery service (§2 AffiliateSpec)."""

    node_id: str
    addresses: tuple[IPAddress, ...] = ()
    hostname: str = ""
    nodename: str = ""
    machine_type: str = ""
    operating_system: str = ""
    kubespan: KubeSpan | None = None
    control_plane: ControlPlane | None = None


def normalize_machine_type(value: str) -> str:
    """Talos parsing: ``join`` and ``""`` mean worker; unknown strings are ``unknown``."""
    if value in ("", "join"):
        return "worker"
    return value if value in MACHINE_TYPES else "unknown"


def key_from_secret(secret: str) -> bytes:
    """Decode ``cluster.secret`` (std base64) into the 32-byte AES key."""
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("cluster secret is not valid base64") from exc
    _check_key(key)
    return key


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"cluster key must be {KEY_SIZE} bytes")


# --- IP helpers -------------------------------------------------------------


def _ip_from_bytes(raw: bytes, what: str) -> IPAddress:
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if len(raw) == 16:
        return ipaddress.IPv6Address(raw)
    raise DiscoveryPayloadError(f"{what}: IP must be 4 or 16 bytes, got {len(raw)}")


def _prefix_to_pb(prefix: IPInterface) -> pb.IPPrefix:
    return pb.IPPrefix(ip=prefix.ip.packed, bits=prefix.network.prefixlen)


def _prefix_from_pb(msg: pb.IPPrefix, what: str) -> IPInterface:
    ip = _ip_from_bytes(msg.ip, what)
    if msg.bits > ip.max_prefixlen:
        raise DiscoveryPayloadError(f"{what}: prefix length {msg.bits} too long")
    return ipaddress.ip_interface((ip, msg.bits))


# --- protobuf <-> model -----------------------------------------------------


def affiliate_to_pb(affiliate: Affiliate) -> pb.Affiliate:
    """Build the ``sidero.discovery.client.Affiliate`` message."""
    msg = pb.Affiliate(
        node_id=affiliate.node_id,
        addresses=[a.packed for a in affiliate.addresses],
        hostname=affiliate.hostname,
        nodename=affiliate.nodename,
        machine_type=affiliate.machine_type,
        operating_system=affiliate.operating_system,
    )
    ks = affiliate.kubespan
    if ks is not None and ks.public_key:
        msg.kubespan.CopyFrom(
            pb.KubeSpan(
                public_key=ks.public_key,
                address=ks.address.packed if ks.address is not None else b"",
                additional_addresses=[_prefix_to_pb(p) for p in ks.additional_addresses],
                exclude_advertised_addresses=[
                    _prefix_to_pb(p) for p in ks.exclude_advertised_networks
                ],
                relay=ks.relay,
            )
        )
    if affiliate.control_plane is not None:
        msg.control_plane.CopyFrom(
            pb.ControlPlane(api_server_port=affiliate.control_plane.api_server_port)
        )
    return msg


def affiliate_from_pb(msg: pb.Affiliate) -> Affiliate:
    """Validate and convert a decoded payload message."""
    kubespan = None
    if msg.HasField("kubespan"):
        ks = msg.kubespan
        kubespan = KubeSpan(
            public_key=ks.public_key,
            address=_ip_from_bytes(ks.address, "kubespan address") if ks.address else None,
            additional_addresses=tuple(
                _prefix_from_pb(p, "additional address") for p in ks.additional_addresses
            ),
            exclude_advertised_networks=tuple(
                _prefix_from_pb(p, "excluded network") for p in ks.exclude_advertised_addresses
            ),
            relay=ks.relay,
        )
    control_plane = None
    if msg.HasField("control_plane"):
        port = msg.control_plane.api_server_port
        if port > 0xFFFF:
            raise DiscoveryPayloadError(f"api server port out of range: {port}")
        control_plane = ControlPlane(api_server_port=port)
    return Affiliate(
        node_id=msg.node_id,
        addresses=tuple(_ip_from_bytes(a, "address") for a in msg.addresses),
        hostname=msg.hostname,
        nodename=msg.nodename,
        machine_type=msg.machine_type,
        operating_system=msg.operating_system,
        kubespan=kubespan,
        control_plane=control_plane,
    )


def encode_affiliate(affiliate: Affiliate) -> bytes:
    """Serialize the payload (plaintext)."""
    return affiliate_to_pb(affiliate).SerializeToString()


def decode_affiliate(plaintext: bytes) -> Affiliate:
    """Parse a plaintext payload; any defect raises ``DiscoveryPayloadError``."""
    msg = pb.Affiliate()
    _parse(msg, plaintext, "affiliate")
    return affiliate_from_pb(msg)


def encode_endpoint(endpoint: Endpoint) -> bytes:
    """Endpoint plaintext: ``[len] ‖ protobuf ‖ zero pad`` to a multiple of 16."""
    body = pb.Endpoint(ip=endpoint.ip.packed, port=endpoint.port).SerializeToString()
    plain = bytes([len(body)]) + body
    return plain + b"\x00" * (-len(plain) % ENDPOINT_BLOCK)


def decode_endpoint(plaintext: bytes) -> Endpoint:
    """Parse an endpoint plaintext (length byte, protobuf, padding)."""
    if not plaintext or len(plaintext) % ENDPOINT_BLOCK:
        raise DiscoveryPayloadError("endpoint length is not a positive multiple of 16")
    size = plaintext[0]
    if size + 1 > len(plaintext):
        raise DiscoveryPayloadError(f"endpoint length byte {size} exceeds the block")
    msg = pb.Endpoint()
    _parse(msg, plaintext[1 : 1 + size], "endpoint")
    if msg.port > 0xFFFF:
        raise DiscoveryPayloadError(f"endpoint port out of range: {msg.port}")
    return Endpoint(_ip_from_bytes(msg.ip, "endpoint"), msg.port)


def _parse(msg: pb.Affiliate | pb.Endpoint, data: bytes, what: str) -> None:
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise DiscoveryPayloadError(f"{what}: bad protobuf") from exc


# --- ciphers ----------------------------------------------------------------


def seal_affiliate(key: bytes, affiliate: Affiliate, nonce: bytes) -> bytes:
    """Encrypt the payload: ``nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)``, no AAD."""
    _check_key(key)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return nonce + AESGCM(key).encrypt(nonce, encode_affiliate(affiliate), None)


def open_affiliate(key: bytes, blob: bytes) -> Affiliate:
    """Decrypt and decode affiliate data from the discovery service."""
    _check_key(key)
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise DiscoveryPayloadError("affiliate data too short")
    try:
        plain = AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)
    except InvalidTag as exc:
        raise DiscoveryPayloadError("affiliate data failed authentication") from exc
    return decode_affiliate(plain)


def seal_endpoint(key: bytes, endpoint: Endpoint) -> bytes:
    """Encrypt one endpoint with raw AES-ECB (16 bytes for IPv4, 32 for IPv6)."""
    _check_key(key)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(encode_endpoint(endpoint)) + enc.finalize()


def open_endpoint(key: bytes, blob: bytes) -> Endpoint:
    """Decrypt one endpoint blob."""
    _check_key(key)
    if not blob or len(blob) % ENDPOINT_BLOCK:
        raise DiscoveryPayloadError("endpoint length is not a positive multiple of 16")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return decode_endpoint(dec.update(blob) + dec.finalize())
