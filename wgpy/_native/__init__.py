"""The binding to the compiled native data plane (the ONLY importer of the lib).

Contract (style.md §7, Conventions 8): loads ``wgpy._native._wgpy_native``
(built by ``_build.py`` at install), checks that the shared object was built
for this package version, and wraps every C entry point in a typed Python
call.  ``available()`` is False when ``WGPY_NATIVE=0``, when the module is
missing (no compiler at install) or stale; the engine then runs its pure
path (``Device`` without a data plane; the pure twins are
``wgpy.dataplane_twin``, ``wgpy.keypair``, ``wgpy.replay``, ``wgpy.offload``).
Remote input never raises here: drops come back as codes, which
``DROP_REASONS`` (protocol drops) and ``IO_DROPS`` (I/O-loop drops) name,
both read from the compiled ``WGDP_DROP_*`` constants; the mailbox sizes
(``MAILBOX_SLOTS`` / ``MAILBOX_BYTES``) come from there too.
Nothing else in wgpy may import the compiled module (``wgpy._native.noise``
wraps the handshake arithmetic over the ``lib`` loaded here).

Objects: ``Context`` (one ``wgdp``: index table, peers, routes, batches and
the I/O loops), ``NativeKeypair`` (a ``wgpy.keypair.Keypair`` whose keys,
counter and replay window live in C), ``ReplayWindow`` (the C window alone,
for differential tests), ``Result`` (caller-owned buffers a batch fills).
"""

from __future__ import annotations

import os
from typing import Any

from .._version import __version__
from ..constants import REJECT_AFTER_MESSAGES, TAG_SIZE, TRANSPORT_HEADER_SIZE
from ..errors import DropReason, NativeError
from ..keypair import Keypair

__all__ = [
    "available", "load_error", "Context", "NativeKeypair", "ReplayWindow", "Result", "Addr",
    "DROP_REASONS", "IO_DROPS", "MAILBOX_SLOTS", "MAILBOX_BYTES", "padded_length", "tso_split", "gro_coalesce", "mac16",
    "checksum",
]

ffi: Any = None
lib: Any = None
_error: str | None = None

DROP_REASONS: dict[int, DropReason] = {}
"""C drop codes that are protocol drops, by the ``DropReason`` of the same name (``WGDP_DROP_<NAME>``)."""
IO_DROPS: dict[int, str] = {}
"""C drop codes of the I/O loops, by the name the runtime counts them under (``io_drops``)."""
MAILBOX_SLOTS = 0
MAILBOX_BYTES = 0
"""What one mailbox direction holds (slow items, their bytes): a drain's ``Result`` needs as much."""
_IO_DROP_NAMES = {"IO_SEND": "udp-send", "IO_TUN_WRITE": "tun-write", "SLOW_OVERFLOW": "slow-overflow",
                  "TUN_DOWN": DropReason.TUN_DOWN.value, "TUN_QUEUE_FULL": DropReason.TUN_QUEUE_FULL.value}


def _load() -> None:
    global ffi, lib, _error, MAILBOX_SLOTS, MAILBOX_BYTES
    if os.environ.get("WGPY_NATIVE", "1") == "0":
        _error = "disabled by WGPY_NATIVE=0"
        return
    try:
        from . import _wgpy_native  # type: ignore[attr-defined]
    except ImportError as exc:
        _error = f"native module not built: {exc}"
        return
    built = _wgpy_native.ffi.string(_wgpy_native.lib.wgdp_version()).decode()
    if built != __version__:
        _error = f"stale native module (built for {built}, package is {__version__})"
        return
    clib = _wgpy_native.lib
    try:
        reasons = {getattr(clib, f"WGDP_DROP_{r.name}"): r for r in DropReason
                   if r.name not in _IO_DROP_NAMES and hasattr(clib, f"WGDP_DROP_{r.name}")}
        io = {getattr(clib, f"WGDP_DROP_{name}"): label for name, label in _IO_DROP_NAMES.items()}
        slots, nbytes = int(clib.WGDP_MAILBOX_SLOTS), int(clib.WGDP_MAILBOX_BYTES)
    except AttributeError as exc:
        _error = f"stale native module ({exc}; rebuild it)"
        return
    DROP_REASONS.update(reasons)
    IO_DROPS.update(io)
    MAILBOX_SLOTS, MAILBOX_BYTES = slots, nbytes
    ffi, lib = _wgpy_native.ffi, clib


_load()


def available() -> bool:
    """True when the compiled data plane is loaded and matches this package."""
    return lib is not None


def load_error() -> str | None:
    """Why the native data plane is unavailable (None when it is available)."""
    return _error


def _require() -> None:
    if lib is None:
        raise NativeError(_error or "native data plane unavailable")


Addr = tuple[int, bytes, int]
"""(family 0/4/6, 16 address bytes, port): the C ``wgdp_addr``."""


def padded_length(length: int, mtu: int) -> int:
    _require()
    return int(lib.wgdp_padded_length(length, mtu))


def tso_split(data: bytes, max_packets: int = 1024) -> list[bytes] | None:
    """Split one virtio-net-header TUN read into IP packets (twin: wgpy.offload.tso_split)."""
    _require()
    stride = 65536
    out = ffi.new("uint8_t[]", stride * max_packets)
    lens = ffi.new("uint32_t[]", max_packets)
    n = int(lib.wgdp_tso_split(ffi.from_buffer(data), len(data), out, stride, max_packets, lens))
    if n < 0:
        return None
    return [bytes(ffi.buffer(out + i * stride, lens[i])) for i in range(n)]


def gro_coalesce(packets: list[bytes]) -> list[bytes]:
    """TUN writes for decrypted packets, TCP runs coalesced (twin: wgpy.offload.gro_coalesce)."""
    _require()
    n = len(packets)
    room = [ffi.new("uint8_t[]", 10 + len(p)) for p in packets]
    for buf, p in zip(room, packets):
        ffi.memmove(buf + 10, p, len(p))
    ptrs = ffi.new("uint8_t *[]", [buf + 10 for buf in room] or [ffi.NULL])
    lens = ffi.new("uint32_t[]", [len(p) for p in packets] or [0])
    cbuf = ffi.new("uint8_t[]", 65535 + 10)
    cap = sum(len(p) for p in packets) + 10 * n + 1
    out = ffi.new("uint8_t[]", cap)
    offs = ffi.new("uint32_t[]", max(n, 1))
    olens = ffi.new("uint32_t[]", max(n, 1))
    k = int(lib.wgdp_gro_coalesce(ptrs, lens, n, cbuf, out, cap, offs, olens, max(n, 1)))
    if k < 0:
        raise NativeError("gro_coalesce output overflow")
    return [bytes(ffi.buffer(out + offs[i], olens[i])) for i in range(k)]


def mac16(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE2s-128 in C (``wgdp_mac16``; twin: ``wgpy.crypto.mac``)."""
    _require()
    if len(key) != 32:
        raise ValueError("key must be 32 bytes")
    out = ffi.new("uint8_t[16]")
    lib.wgdp_mac16(key, data, len(data), out)
    return bytes(out)


def checksum(data: bytes, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data`` plus an unfolded ``initial`` sum."""
    _require()
    return int(lib.wgdp_checksum(ffi.from_buffer(data), len(data), initial))


def _addr_out(c: Any) -> Addr:
    return (int(c.family), bytes(ffi.buffer(c.addr, 16)), int(c.port))


def _addr_in(c: Any, addr: Addr | None) -> None:
    if addr is None:
        c.family = 0
        return
    family, raw, port = addr
    c.family = family
    ffi.memmove(c.addr, raw.ljust(16, b"\0")[:16], 16)
    c.port = port


class ReplayWindow:
    """The C replay window (twin of ``wgpy.replay.ReplayWindow``)."""

    def __init__(self) -> None:
        _require()
        self._r = ffi.new("wgdp_replay *")
        lib.wgdp_replay_init(self._r)

    def check(self, counter: int) -> bool:
        if counter < 0 or counter >= 1 << 64:
            return False
        return bool(lib.wgdp_replay_check(self._r, counter))


class NativeKeypair(Keypair):
    """A ``Keypair`` whose AEAD contexts, send counter and replay window live in C.

    Registered in its ``Context``'s index table on creation; ``zero()``
    removes it from the context and wipes the keys.
    """

    __slots__ = ("_kp", "_ctx", "peer_id")

    def __init__(self, ctx: Context | None, send_key: bytes, receive_key: bytes, local_index: int,
                 remote_index: int, is_initiator: bool, created: float, peer: object = None,
                 peer_id: int = 0) -> None:
        _require()
        if len(send_key) != 32 or len(receive_key) != 32:
            raise ValueError("keys must be 32 bytes")
        raw = lib.wgdp_keypair_new(send_key, receive_key, local_index, remote_index, int(is_initiator),
                                   created, peer_id)
        if raw == ffi.NULL:
            raise NativeError("wgdp_keypair_new failed")
        self._kp = ffi.gc(raw, lib.wgdp_keypair_unref)
        self._ctx = ctx
        self.peer_id = peer_id
        self.send_key = b""
        self.receive_key = b""
        self.local_index = local_index
        self.remote_index = remote_index
        self.is_initiator = is_initiator
        self.created = created
        self.peer = peer
        if ctx is not None:
            ctx.add_keypair(self)

    @property
    def send_counter(self) -> int:
        return int(lib.wgdp_keypair_send_counter(self._kp))

    @send_counter.setter
    def send_counter(self, value: int) -> None:
        lib.wgdp_keypair_set_send_counter(self._kp, value)

    def can_send(self, now: float) -> bool:
        return bool(lib.wgdp_keypair_can_send(self._kp, now))

    def seal(self, packet: bytes, mtu: int) -> bytes:
        size = int(lib.wgdp_padded_length(len(packet), mtu)) + TRANSPORT_HEADER_SIZE + TAG_SIZE
        out = ffi.new("uint8_t[]", size)
        n = lib.wgdp_keypair_seal(self._kp, ffi.from_buffer(packet), len(packet), mtu, out, size)
        if n != size:
            raise NativeError("seal on a zeroed keypair")
        return bytes(ffi.buffer(out, n))

    def open(self, message: bytes) -> bytes | DropReason:
        size = max(len(message) - TRANSPORT_HEADER_SIZE - TAG_SIZE, 1)
        out = ffi.new("uint8_t[]", size)
        n = int(lib.wgdp_keypair_open(self._kp, ffi.from_buffer(message), len(message), out))
        if n < 0:
            return DROP_REASONS.get(-n, DropReason.MALFORMED)
        return bytes(ffi.buffer(out, n))

    def set_fast_rx(self, on: bool) -> None:
        lib.wgdp_keypair_set_fast_rx(self._kp, int(on))

    def expire_sending(self) -> None:
        self.send_counter = REJECT_AFTER_MESSAGES

    def zero(self) -> None:
        if self._ctx is not None:
            self._ctx.remove_keypair(self)
        lib.wgdp_keypair_zero(self._kp)

    def __repr__(self) -> str:
        return (f"NativeKeypair(local={self.local_index:#010x}, remote={self.remote_index:#010x}, "
                f"initiator={self.is_initiator})")


class Result:
    """Caller-owned buffers one batch (or one I/O loop return) fills."""

    def __init__(self, events: int = 1024, slow: int = 1024, slow_bytes: int = 1 << 20) -> None:
        _require()
        self._keep = (ffi.new("wgdp_event[]", events), ffi.new("wgdp_slow[]", slow),
                      ffi.new("uint8_t[]", slow_bytes))
        self.c = ffi.new("wgdp_result *")
        self.c.events, self.c.slow, self.c.slow_buf = self._keep
        self.c.events_cap, self.c.slow_cap, self.c.slow_buf_cap = events, slow, slow_bytes
        lib.wgdp_result_reset(self.c)

    def reset(self) -> None:
        lib.wgdp_result_reset(self.c)

    def events(self) -> list[tuple[int, int, int, int, int, Addr]]:
        """(peer_id, generation, messages, data, bytes, endpoint) per peer."""
        if not self.c.n_events:
            return []
        return [(int(e.peer_id), int(e.generation), int(e.messages), int(e.data), int(e.bytes),
                 _addr_out(e.endpoint))
                for e in (self.c.events[i] for i in range(self.c.n_events))]

    def slow(self) -> list[tuple[bytes, int, int, int, Addr]]:
        """(data, peer_id, generation, seq, source) per item handed back to Python."""
        if not self.c.n_slow:
            return []
        buf = ffi.buffer(self.c.slow_buf, self.c.slow_buf_used)
        return [(bytes(buf[s.off:s.off + s.len]), int(s.peer_id), int(s.generation), int(s.seq),
                 _addr_out(s.src))
                for s in (self.c.slow[i] for i in range(self.c.n_slow))]

    def drops(self) -> dict[int, int]:
        counts = ffi.unpack(self.c.drops, lib.WGDP_DROP_COUNT)  # one copy, not a cffi read per code
        if not any(counts):
            return {}
        return {i: int(n) for i, n in enumerate(counts) if n and i}


class Context:
    """One ``wgdp`` context (tables shared by the TX, RX and control threads)."""

    def __init__(self) -> None:
        _require()
        raw = lib.wgdp_new()
        if raw == ffi.NULL:
            raise NativeError("wgdp_new failed")
        self._ctx = ffi.gc(raw, lib.wgdp_free)

    def set_mtu(self, mtu: int) -> None:
        lib.wgdp_set_mtu(self._ctx, mtu)

    def set_mac1_key(self, key: bytes | None) -> None:
        """The key mac1 of handshake messages to us is checked with (None: drop them all)."""
        if key is not None and len(key) != 32:
            raise ValueError("mac1 key must be 32 bytes")
        lib.wgdp_set_mac1_key(self._ctx, ffi.NULL if key is None else key)

    def set_under_load(self, until: float) -> None:
        """Under load until ``until`` (monotonic seconds; only ever extended): the handshake gate then
        limits initiations and responses per source before the handshake ring."""
        lib.wgdp_set_under_load(self._ctx, until)

    def stop(self, on: bool = True) -> None:
        lib.wgdp_stop(self._ctx, int(on))

    def set_offloads(self, gso: bool, gro: bool) -> tuple[bool, bool]:
        """Ask for UDP GSO/GRO in the I/O loops; returns what is in effect."""
        flags = int(lib.wgdp_set_offloads(self._ctx, int(gso), int(gro)))
        return bool(flags & 1), bool(flags & 2)

    def set_tun_vnet(self, on: bool) -> None:
        """The TUN fd carries virtio-net headers (IFF_VNET_HDR): split on read, zero header on write."""
        lib.wgdp_set_tun_vnet(self._ctx, int(on))

    def add_keypair(self, kp: NativeKeypair) -> None:
        lib.wgdp_add_keypair(self._ctx, kp._kp)

    def remove_keypair(self, kp: NativeKeypair) -> None:
        lib.wgdp_remove_keypair(self._ctx, kp._kp)

    def peer_add(self, peer_id: int, generation: int) -> None:
        """Assign slot ``peer_id`` for its ``generation`` (non-zero; a new one replaces the slot)."""
        if not 0 < generation <= 0xFFFFFFFF:
            raise ValueError("generation must be a non-zero u32")
        if lib.wgdp_peer_add(self._ctx, peer_id, generation) != 0:
            raise NativeError("wgdp_peer_add failed")

    def peer_remove(self, peer_id: int) -> None:
        lib.wgdp_peer_remove(self._ctx, peer_id)

    def peer_set_keypair(self, peer_id: int, kp: NativeKeypair | None) -> None:
        lib.wgdp_peer_set_keypair(self._ctx, peer_id, kp._kp if kp is not None else ffi.NULL)

    def peer_set_endpoint(self, peer_id: int, endpoint: Addr | None) -> None:
        c = ffi.new("wgdp_addr *")
        _addr_in(c, endpoint)
        lib.wgdp_peer_set_endpoint(self._ctx, peer_id, c)

    def peer_enable_fast_tx(self, peer_id: int, processed_seq: int) -> bool:
        return bool(lib.wgdp_peer_enable_fast_tx(self._ctx, peer_id, processed_seq & 0xFFFFFFFF))

    def peer_disable_fast_tx(self, peer_id: int) -> None:
        lib.wgdp_peer_disable_fast_tx(self._ctx, peer_id)

    def set_routes(self, routes: list[tuple[int, int, bytes, int]]) -> None:
        """Replace the allowed-IPs table with (family, prefix length, address, peer_id) entries."""
        n = len(routes)
        fams = ffi.new("uint8_t[]", max(n, 1))
        lens = ffi.new("uint8_t[]", max(n, 1))
        addrs = ffi.new("uint8_t[]", max(16 * n, 1))
        ids = ffi.new("uint32_t[]", max(n, 1))
        for i, (family, length, addr, pid) in enumerate(routes):
            fams[i], lens[i], ids[i] = family, length, pid
            ffi.memmove(addrs + 16 * i, addr.ljust(16, b"\0")[:16], 16)
        if lib.wgdp_set_routes(self._ctx, n, fams, lens, addrs, ids) != 0:
            raise NativeError("wgdp_set_routes failed")

    def route_lookup(self, addr: bytes) -> int | None:
        pid = int(lib.wgdp_route_lookup(self._ctx, ffi.from_buffer(addr), len(addr)))
        return None if pid < 0 else pid

    def encrypt_batch(self, packets: list[bytes], now: float, res: Result) -> list[tuple[bytes, int] | None]:
        """Seal TUN packets: per packet (message, peer_id) or None (slow or dropped, see ``res``)."""
        n = len(packets)
        data, offs, lens = _pack(packets)
        stride = max((len(p) for p in packets), default=0) + 64
        out = ffi.new("uint8_t[]", max(stride * n, 1))
        out_len = ffi.new("uint32_t[]", max(n, 1))
        out_peer = ffi.new("uint32_t[]", max(n, 1))
        lib.wgdp_encrypt_batch(self._ctx, now, n, data, offs, lens, out, stride, out_len, out_peer, res.c)
        return [(bytes(ffi.buffer(out + i * stride, out_len[i])), int(out_peer[i])) if out_len[i] else None
                for i in range(n)]

    def decrypt_batch(self, datagrams: list[tuple[bytes, Addr]], now: float, res: Result) -> list[bytes | None]:
        """Open datagrams: per datagram the inner packet, or None (slow, keepalive or dropped)."""
        n = len(datagrams)
        data, offs, lens = _pack([d for d, _ in datagrams])
        srcs = ffi.new("wgdp_addr[]", max(n, 1))
        for i, (_, src) in enumerate(datagrams):
            _addr_in(srcs[i], src)
        stride = max((len(d) for d, _ in datagrams), default=0) + 16
        out = ffi.new("uint8_t[]", max(stride * n, 1))
        out_len = ffi.new("uint32_t[]", max(n, 1))
        lib.wgdp_decrypt_batch(self._ctx, now, n, data, offs, lens, srcs, out, stride, out_len, res.c)
        return [bytes(ffi.buffer(out + i * stride, out_len[i])) if out_len[i] else None for i in range(n)]

    def tun_to_udp(self, tun_fd: int, sock4: int, sock6: int, max_batch: int, flush_ms: int, queue: int = 0) -> int:
        """Run the TX loop of TUN queue ``queue`` (GIL released) until ``stop()``: 0, or a negative errno
        (TUN gone)."""
        return int(lib.wgdp_tun_to_udp_q(self._ctx, queue, tun_fd, sock4, sock6, max_batch, flush_ms))

    def udp_to_tun(self, sock4: int, sock6: int, tun_fd: int, max_batch: int, flush_ms: int, queue: int = 0) -> int:
        """Run the RX loop of TUN queue ``queue`` (GIL released) until ``stop()``: 0, or a negative errno
        (TUN gone).  The RX loops of all queues share the sockets and write in the order they received."""
        return int(lib.wgdp_udp_to_tun_q(self._ctx, queue, sock4, sock6, tun_fd, max_batch, flush_ms))

    def notify_fd(self) -> int:
        """An eventfd that becomes readable when the loops have published work for Python."""
        return int(lib.wgdp_notify_fd(self._ctx))

    def drain(self, tx: Result, rx: Result) -> bool:
        """Everything the loops published since the last drain; True if some must wait for the next."""
        return bool(lib.wgdp_drain(self._ctx, tx.c, rx.c))


def _pack(items: list[bytes]) -> tuple[Any, Any, Any]:
    n = len(items)
    offs = ffi.new("uint32_t[]", max(n, 1))
    lens = ffi.new("uint32_t[]", max(n, 1))
    pos = 0
    for i, item in enumerate(items):
        offs[i], lens[i] = pos, len(item)
        pos += len(item)
    data = ffi.new("uint8_t[]", max(pos, 1))
    ffi.memmove(data, b"".join(items), pos)
    return data, offs, lens
