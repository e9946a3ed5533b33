"""Node identity: node ID, KubeSpan key pair, cluster ULA /64 and node /128.

Contract (kubespan.md §1 "Identity", §2 "Node ID"):

- **Node ID**: 32 random bytes in jxskiss/base62 (``kubespan.base62``), kept
  in ``node-identity.yaml`` (key ``nodeId``).  Peers treat it as opaque.
- **Key pair**: a clamped Curve25519 key from ``wgpy.keys``, kept in
  ``kubespan-identity.yaml`` (keys ``address``, ``subnet``, ``privateKey``,
  ``publicKey``; address and subnet written empty and recomputed each load).
- Both files live in one state directory, mode 0600, written atomically (a
  0600 temporary file in the same directory, fsync, ``os.replace``, fsync of
  the directory) and reused on restart.  A file that exists but is
  unreadable, partial or corrupt raises ``IdentityError`` naming it: it is
  never silently regenerated, because a new key or node ID changes the node's
  identity for the whole cluster.
- **Cluster /64**: SHA-256 of the UTF-8 cluster-ID string (never decoded),
  bytes 16..31, byte 0 = 0xfd, byte 7 = 0x02 (KubeSpan purpose), low 64 bits
  zero.  **Node /128**: that prefix plus the modified EUI-64 interface ID of
  the first hardware link's MAC (``first_ethernet_mac``).

This module is shell code: it reads and writes files and, by default, draws
randomness from ``os.urandom``; every function takes ``rng`` so tests inject
their own.  Secrets never reach a log line, a repr or an error message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from wgpy import PrivateKey, PublicKey, WgpyError

from . import base62
from .errors import IdentityError
from .resources import KUBESPAN_IDENTITY_FILE, NODE_IDENTITY_FILE, ClusterIdentitySpec, KubeSpanIdentitySpec

log = logging.getLogger(__name__)

Rng = Callable[[int], bytes]

NODE_ID_BYTES = 32
ULA_PURPOSE_BOOTSTRAP = 0x01
ULA_PURPOSE_KUBESPAN = 0x02
ULA_PURPOSE_SIDEROLINK = 0x03
ARPHRD_ETHER = 1
SYS_CLASS_NET = "/sys/class/net"

_tmp_counter = itertools.count()


# --- addresses ---------------------------------------------------------------


def ula_prefix(cluster_id: str, purpose: int = ULA_PURPOSE_KUBESPAN) -> ipaddress.IPv6Network:
    """The cluster's ULA /64 for ``purpose`` (Talos ``network.ULAPrefix``)."""
    if not isinstance(cluster_id, str):
        raise TypeError("cluster_id must be a str")
    digest = bytearray(hashlib.sha256(cluster_id.encode("utf-8")).digest()[16:32])
    digest[0] = 0xFD
    digest[7] = purpose
    digest[8:16] = bytes(8)
    return ipaddress.IPv6Network((bytes(digest), 64))


def is_ula(addr: ipaddress.IPv6Address | ipaddress.IPv4Address, purpose: int) -> bool:
    """Talos ``IsULA``: ``ip[0] == 0xfd and ip[7] == purpose``."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return False
    packed = addr.packed
    return packed[0] == 0xFD and packed[7] == purpose


def eui64_interface_id(mac: bytes) -> bytes:
    """The modified EUI-64 interface ID of a 6- or 8-byte hardware address."""
    if len(mac) == 6:
        iid = bytearray(mac[0:3] + b"\xff\xfe" + mac[3:6])
    elif len(mac) == 8:
        iid = bytearray(mac)
    else:
        raise ValueError(f"hardware address must be 6 or 8 bytes, got {len(mac)}")
    iid[0] ^= 0x02
    return bytes(iid)


def node_address(cluster_id: str, mac: bytes) -> ipaddress.IPv6Address:
    """The node's KubeSpan /128: cluster /64 + modified EUI-64 of ``mac``."""
    prefix = ula_prefix(cluster_id).network_address.packed[:8]
    return ipaddress.IPv6Address(prefix + eui64_interface_id(mac))


def parse_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or 8 groups); raises ``ValueError``."""
    parts = text.strip().split(":")
    if len(parts) not in (6, 8) or any(len(p) != 2 for p in parts):
        raise ValueError(f"not a hardware address: {text!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a hardware address: {text!r}") from None


def _read_sys(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def first_ethernet_mac(sys_class_net: str = SYS_CLASS_NET) -> bytes | None:
    """The MAC of the first link, in name order, that is ethernet hardware.

    Talos takes the first link with type ether and no kind.  On a plain host
    the equivalent is: ``type`` is 1 (ARPHRD_ETHER), the MAC is non-zero and
    the link is backed by a device (``<link>/device`` exists, which excludes
    bridges, veths and other virtual links).  When no link has a device, the
    first ether link with a non-zero MAC is used.  ``None`` if there is none.
    """
    try:
        names = sorted(os.listdir(sys_class_net))
    except OSError:
        return None
    fallback: bytes | None = None
    for name in names:
        base = os.path.join(sys_class_net, name)
        if _read_sys(os.path.join(base, "type")) != str(ARPHRD_ETHER):
            continue
        text = _read_sys(os.path.join(base, "address"))
        try:
            mac = parse_mac(text or "")
        except ValueError:
            continue
        if not any(mac):
            continue
        if os.path.exists(os.path.join(base, "device")):
            return mac
        if fallback is None:
            fallback = mac
    return fallback


# --- the identity -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """This node's identity; ``repr`` never shows the private key."""

    node_id: str
    private_key: PrivateKey = field(repr=False)
    public_key: PublicKey
    address: ipaddress.IPv6Address
    subnet: ipaddress.IPv6Network


def machine_id(node_id: str) -> str:
    """``/etc/machine-id`` as Talos derives it: hex of the first 16 decoded bytes."""
    return base62.decode(node_id)[:16].hex()


def load_identity(
    state_dir: str,
    cluster_id: str,
    mac: bytes | None = None,
    rng: Rng = os.urandom,
    sys_class_net: str = SYS_CLASS_NET,
) -> Identity:
    """Load (or create once) the node ID and key pair; compute the addresses.

    ``mac`` overrides the automatic choice (``first_ethernet_mac``).
    """
    if mac is None:
        mac = first_ethernet_mac(sys_class_net)
        if mac is None:
            raise IdentityError(sys_class_net, "no ethernet link with a hardware address; pass the MAC explicitly")
    try:
        address = node_address(cluster_id, mac)
    except ValueError as exc:
        raise IdentityError("mac", str(exc)) from None
    node_id = load_or_create_node_id(state_dir, rng)
    private_key = load_or_create_private_key(state_dir, rng)
    return Identity(
        node_id=node_id,
        private_key=private_key,
        public_key=private_key.public_key(),
        address=address,
        subnet=ula_prefix(cluster_id),
    )


def load_or_create_node_id(state_dir: str, rng: Rng = os.urandom) -> str:
    """The persisted node ID, generated (32 random bytes) on first use."""
    path = os.path.join(state_dir, NODE_IDENTITY_FILE)
    data = _load_mapping(path)
    if data is None:
        spec = ClusterIdentitySpec(node_id=base62.encode(_draw(rng, NODE_ID_BYTES)))
        _write_yaml(path, spec.to_mapping())
        log.info("generated node ID %s in %s", spec.node_id, path)
        return spec.node_id
    node_id = data.get("nodeId")
    if not isinstance(node_id, str) or not node_id:
        raise IdentityError(path, "nodeId is missing or not a string")
    try:
        base62.decode(node_id)
    except ValueError:
        raise IdentityError(path, f"nodeId {node_id!r} is not base62") from None
    return node_id


def load_or_create_private_key(state_dir: str, rng: Rng = os.urandom) -> PrivateKey:
    """The persisted KubeSpan private key, generated on first use."""
    path = os.path.join(state_dir, KUBESPAN_IDENTITY_FILE)
    data = _load_mapping(path)
    if data is None:
        key = PrivateKey.generate(rng)
        spec = KubeSpanIdentitySpec(private_key=key.to_base64(), public_key=key.public_key().to_base64())
        _write_yaml(path, spec.to_mapping())
        log.info("generated KubeSpan key pair (public key %s) in %s", spec.public_key, path)
        return key
    return _private_key_from(path, data)


def _private_key_from(path: str, data: dict[str, Any]) -> PrivateKey:
    private_b64 = data.get("privateKey")
    public_b64 = data.get("publicKey")
    if not isinstance(private_b64, str) or not isinstance(public_b64, str):
        raise IdentityError(path, "privateKey/publicKey missing or not strings")
    try:
        key = PrivateKey.from_base64(private_b64)
        public = PublicKey.from_base64(public_b64)
    except (WgpyError, ValueError):  # the message could echo input
        raise IdentityError(path, "privateKey/publicKey are not 32-byte base64 keys") from None
    if key.public_key() != public:
        raise IdentityError(path, "publicKey does not match privateKey")
    return key


def _draw(rng: Rng, n: int) -> bytes:
    data = rng(n)
    if not isinstance(data, bytes) or len(data) != n:
        raise ValueError(f"rng must return {n} bytes")
    return data


# --- files --------------------------------------------------------------------


def _load_mapping(path: str) -> dict[str, Any] | None:
    """The YAML mapping in ``path``; ``None`` if the file does not exist."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IdentityError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise IdentityError(path, "corrupt file: not valid YAML") from None
    if not isinstance(data, dict):
        raise IdentityError(path, "corrupt or partial file: not a YAML mapping")
    return data


def _write_yaml(path: str, mapping: dict[str, Any]) -> None:
    text = yaml.safe_dump(mapping, default_flow_style=False, sort_keys=False)
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise IdentityError(path, f"cannot write: {exc.strerror or exc}") from None


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file is ``mode`` from creation.

    Creates the parent directory (0700) if needed.  Raises ``OSError``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    base = os.path.basename(path)
    fd = -1
    tmp = ""
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{next(_tmp_counter)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue
    if fd < 0:
        raise FileExistsError(f"cannot create a temporary file next to {path}")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
