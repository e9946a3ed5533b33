"""The cross-platform UAPI text protocol: parse ``set``, serialize ``get``.

Contract (wireguard.md §9; wireguard-go ``device/uapi.go``): this module is a
pure codec.  ``parse_set`` turns the ``key=value`` lines of one ``set``
transaction into a ``wgpy.config.DeviceUpdate``; it checks *every* line
before anything is applied, so a malformed request raises ``UapiError`` with
a positive errno (``EINVAL`` for a bad key or value, ``EPROTO`` for a line
without ``=``) and the caller changes nothing.  ``serialize_get`` renders a
device in wireguard-go's order.  The transport (a unix socket, the framing
with ``set=1``/``get=1`` and the blank line, the ``errno=-N`` reply) belongs
to ``wgpy.io.uapi_server``.  No I/O, no clock.

Differences from wireguard-go, on purpose: wireguard-go applies lines as it
reads them and stops at the first bad one, leaving earlier lines applied;
wgpy validates the whole transaction first.  The semantics of valid
transactions are the same: a peer whose key equals our own public key is a
silently ignored dummy, ``remove=true`` ignores the rest of its section,
``update_only=true`` ignores the section when the peer does not exist.
"""

from __future__ import annotations

import errno as _errno
import ipaddress
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence, TypeVar

from .config import DeviceUpdate, Endpoint, IPNetwork, PeerUpdate, format_endpoint
from .errors import UapiError
from .keys import PresharedKey, PrivateKey, PublicKey

EINVAL = _errno.EINVAL
EPROTO = _errno.EPROTO

KeyT = TypeVar("KeyT", PrivateKey, PublicKey, PresharedKey)

_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")


class PeerView(Protocol):
    """What ``serialize_get`` reads from a peer (``wgpy.peer.Peer`` provides it)."""

    @property
    def public_key(self) -> PublicKey: ...
    @property
    def preshared_key(self) -> PresharedKey | None: ...
    @property
    def endpoint(self) -> Endpoint | None: ...
    @property
    def persistent_keepalive(self) -> int: ...
    @property
    def rx_bytes(self) -> int: ...
    @property
    def tx_bytes(self) -> int: ...
    @property
    def last_handshake_wall(self) -> float | None: ...
    def allowed_ips(self) -> Sequence[IPNetwork]: ...


class DeviceView(Protocol):
    """What ``serialize_get`` reads from a device (``wgpy.device.Device``)."""

    @property
    def private_key(self) -> PrivateKey | None: ...
    @property
    def listen_port(self) -> int: ...
    @property
    def fwmark(self) -> int: ...
    def peers(self) -> Sequence[PeerView]: ...


# --------------------------------------------------------------------------- get


def serialize_get(device: DeviceView) -> str:
    """The body of a ``get`` reply (without the trailing ``errno=0``)."""
    out: list[str] = []
    key = device.private_key
    if key is not None and not key.is_zero():
        out.append(f"private_key={key.to_hex()}")
    if device.listen_port:
        out.append(f"listen_port={device.listen_port}")
    if device.fwmark:
        out.append(f"fwmark={device.fwmark}")
    for peer in device.peers():
        out.extend(_peer_lines(peer))
    return "".join(line + "\n" for line in out)


def _peer_lines(peer: PeerView) -> list[str]:
    psk = peer.preshared_key
    lines = [
        f"public_key={peer.public_key.to_hex()}",
        f"preshared_key={psk.to_hex() if psk is not None else '0' * 64}",
        "protocol_version=1",
    ]
    if peer.endpoint is not None:
        lines.append(f"endpoint={format_endpoint(peer.endpoint)}")
    sec, nsec = split_wall_time(peer.last_handshake_wall)
    lines += [
        f"last_handshake_time_sec={sec}",
        f"last_handshake_time_nsec={nsec}",
        f"tx_bytes={peer.tx_bytes}",
        f"rx_bytes={peer.rx_bytes}",
        f"persistent_keepalive_interval={peer.persistent_keepalive}",
    ]
    lines += [f"allowed_ip={net}" for net in peer.allowed_ips()]
    return lines


def split_wall_time(wall: float | None) -> tuple[int, int]:
    """Unix seconds as (sec, nsec); ``None`` (never) is (0, 0)."""
    if wall is None or wall <= 0:
        return 0, 0
    nanos = int(round(wall * 1e9))
    return divmod(nanos, 1_000_000_000)


# --------------------------------------------------------------------------- set


@dataclass(slots=True)
class _PeerSection:
    update: PeerUpdate
    dummy: bool


def parse_set(lines: Iterable[str], own_public_key: PublicKey | None) -> DeviceUpdate:
    """Parse the lines of one ``set`` transaction (no ``set=1``, no blank line).

    ``own_public_key`` is the device's current public key; a ``private_key``
    line earlier in the same transaction replaces it for the dummy-peer rule.
    Raises ``UapiError`` and builds nothing on any malformed line.
    """
    update = DeviceUpdate()
    sections: list[_PeerSection] = []
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(EPROTO, f"line without '=': {line[:40]!r}")
        if key == "public_key":
            own = _effective_public_key(update, own_public_key)
            pub = _parse_key(PublicKey, value, key)
            sections.append(_PeerSection(PeerUpdate(public_key=pub), dummy=own is not None and pub == own))
        elif not sections:
            _device_line(update, key, value)
        else:
            _peer_line(sections[-1], key, value)
    update.peers = [s.update for s in sections if not s.dummy]
    return update


def _effective_public_key(update: DeviceUpdate, current: PublicKey | None) -> PublicKey | None:
    if update.private_key is None:
        return current
    if update.private_key.is_zero():
        return None
    return update.private_key.public_key()


def _device_line(update: DeviceUpdate, key: str, value: str) -> None:
    if key == "private_key":
        update.private_key = _parse_key(PrivateKey, value, key)
    elif key == "listen_port":
        update.listen_port = _parse_uint(value, 16, key)
    elif key == "fwmark":
        update.fwmark = _parse_uint(value, 32, key)
    elif key == "replace_peers":
        _parse_true(value, key)
        update.replace_peers = True
    else:
        raise UapiError(EINVAL, f"invalid UAPI device key: {key[:40]!r}")


def _peer_line(section: _PeerSection, key: str, value: str) -> None:
    peer = section.update
    ignored = section.dummy or peer.remove
    if key == "remove":
        _parse_true(value, key)
        if not ignored:
            section.update = PeerUpdate(public_key=peer.public_key, remove=True)
    elif key == "update_only":
        _parse_true(value, key)
        peer.update_only = True
    elif key == "preshared_key":
        psk = _parse_key(PresharedKey, value, key)
        if not ignored:
            peer.preshared_key = psk
    elif key == "endpoint":
        endpoint = parse_uapi_endpoint(value)
        if not ignored:
            peer.endpoint = endpoint
    elif key == "persistent_keepalive_interval":
        interval = _parse_uint(value, 16, key)
        if not ignored:
            peer.persistent_keepalive = interval
    elif key == "replace_allowed_ips":
        _parse_true(value, key)
        if not ignored:
            peer.replace_allowed_ips = True
            peer.allowed_ips.clear()
            peer.remove_allowed_ips.clear()
    elif key == "allowed_ip":
        _allowed_ip_line(peer, value, ignored)
    elif key == "protocol_version":
        if value != "1":
            raise UapiError(EINVAL, "invalid protocol version")
    else:
        raise UapiError(EINVAL, f"invalid UAPI peer key: {key[:40]!r}")


def _allowed_ip_line(peer: PeerUpdate, value: str, ignored: bool) -> None:
    remove = value.startswith("-")
    net = parse_prefix(value[1:] if remove else value)
    if ignored:
        return
    if remove:
        if net in peer.allowed_ips:
            peer.allowed_ips = [n for n in peer.allowed_ips if n != net]
        peer.remove_allowed_ips.append(net)
    else:
        if net in peer.remove_allowed_ips:
            peer.remove_allowed_ips = [n for n in peer.remove_allowed_ips if n != net]
        peer.allowed_ips.append(net)


# ----------------------------------------------------------------- value parsers


def _parse_key(cls: type[KeyT], value: str, name: str) -> KeyT:
    if len(value) != 64 or not _HEX.issuperset(value):
        raise UapiError(EINVAL, f"{name}: must be 64 hex characters")
    return cls(bytes.fromhex(value))


def _parse_uint(value: str, bits: int, name: str) -> int:
    if not value or len(value) > 20 or not _DIGITS.issuperset(value):
        raise UapiError(EINVAL, f"{name}: not a decimal number")
    number = int(value)
    if number >= 1 << bits:
        raise UapiError(EINVAL, f"{name}: out of range")
    return number


def _parse_true(value: str, name: str) -> None:
    if value != "true":
        raise UapiError(EINVAL, f"{name}: only 'true' is accepted")


def parse_prefix(text: str) -> IPNetwork:
    """``addr/len`` as Go's ``netip.ParsePrefix`` accepts it (host bits masked)."""
    addr, sep, length = text.partition("/")
    if not sep or not length or len(length) > 3 or not _DIGITS.issuperset(length) or "%" in addr:
        raise UapiError(EINVAL, "allowed_ip: expected addr/len")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError as exc:
        raise UapiError(EINVAL, "allowed_ip: bad address") from exc
    if int(length) > ip.max_prefixlen:
        raise UapiError(EINVAL, "allowed_ip: prefix length out of range")
    return ipaddress.ip_network((ip, int(length)), strict=False)


def parse_uapi_endpoint(text: str) -> Endpoint:
    """``1.2.3.4:51820`` or ``[fd00::1]:51820`` (zone dropped, v4-mapped unmapped)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise UapiError(EINVAL, "endpoint: IPv6 needs brackets")
    if not sep or not port or len(port) > 5 or not _DIGITS.issuperset(port) or not 0 < int(port) <= 65535:
        raise UapiError(EINVAL, "endpoint: bad port")
    if host.count("%") == 1:
        host = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise UapiError(EINVAL, "endpoint: host must be a numeric IP") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    elif isinstance(ip, ipaddress.IPv4Address) and text.startswith("["):
        raise UapiError(EINVAL, "endpoint: IPv4 in brackets")
    return (str(ip), int(port))
