"""Differential tests: native routes and batch encrypt/decrypt vs ``PureDataPlane``.

Both planes get the same peers, routes, keypairs (same keys, indices, ages,
``fast_rx``), endpoints and ``fast_tx`` flags; then the same random batches
must give the same messages, inner packets, slow lists, events and drops.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from wgpy import _native
from wgpy.allowedips import AllowedIPs
from wgpy.config import Endpoint
from wgpy.dataplane import BatchResult, NativeDataPlane, convert_result, endpoint_to_addr
from wgpy.dataplane_twin import PureDataPlane
from wgpy.keypair import Keypair

from wgsupport import ipv4_packet, ipv6_packet


# ---------------------------------------------------------------- routes

prefix4 = st.tuples(st.just(4), st.integers(0, 32), st.binary(min_size=4, max_size=4))
prefix6 = st.tuples(st.just(6), st.integers(0, 128), st.binary(min_size=16, max_size=16))


@dataclass(eq=False)
class Box:
    pid: int


@given(st.lists(st.tuples(st.one_of(prefix4, prefix6), st.integers(0, 7)), max_size=40),
       st.lists(st.one_of(st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16)), max_size=40))
def test_route_lookup_identical(routes: list[tuple[tuple[int, int, bytes], int]], probes: list[bytes]) -> None:
    plane = NativeDataPlane()
    boxes = {pid: Box(pid) for pid in range(8)}
    table: AllowedIPs[Box] = AllowedIPs()
    entries = []
    for (family, length, addr), pid in routes:
        table.insert(ipaddress.ip_network((addr, length), strict=False), boxes[pid])
        entries.append((family, length, addr, pid))
        probes.append(addr)  # inside the prefix
    plane.ctx.set_routes(entries)
    for addr in probes:
        want = table.lookup(addr)
        assert plane.ctx.route_lookup(addr) == (want.pid if want else None), addr.hex()


# ---------------------------------------------------------------- batches

NOW = 1000.0
PEERS = 3  # peer 0..2: tunnel 10.0.<pid>.0/24 and fd00:<pid>::/64
UNDERLAY = [("192.0.2.1", 51820), ("2001:db8::2", 51821), ("192.0.2.3", 1)]


@dataclass
class Scenario:
    seed: int
    fast_tx: list[bool]
    has_kp: list[bool]
    kp_age: list[float]
    fast_rx: list[bool]
    counter_start: list[int]
    mtu: int


scenarios = st.builds(
    Scenario,
    seed=st.integers(0, 2**32),
    fast_tx=st.lists(st.booleans(), min_size=PEERS, max_size=PEERS),
    has_kp=st.lists(st.booleans(), min_size=PEERS, max_size=PEERS),
    kp_age=st.lists(st.sampled_from([0.0, 100.0, 179.9, 180.0, 500.0]), min_size=PEERS, max_size=PEERS),
    fast_rx=st.lists(st.booleans(), min_size=PEERS, max_size=PEERS),
    counter_start=st.lists(st.sampled_from([0, 2**64 - 2**13 - 3]), min_size=PEERS, max_size=PEERS),
    mtu=st.sampled_from([0, 1280, 1420]),
)


def build(plane: PureDataPlane | NativeDataPlane, sc: Scenario) -> dict[int, Keypair]:
    """Same state in either plane; returns the remote side's sending keypairs by local index."""
    rnd = random.Random(sc.seed)
    remotes: dict[int, Keypair] = {}
    plane._set_mtu(sc.mtu)
    routes = []
    for pid in range(PEERS):
        plane._peer_add(pid, 7 + pid)
        routes.append((4, 24, bytes([10, 0, pid, 0]), pid))
        routes.append((6, 64, bytes([0xFD, 0, 0, pid]) + bytes(12), pid))
        plane._peer_set_endpoint(pid, endpoint_to_addr(UNDERLAY[pid]))
        k1, k2 = rnd.randbytes(32), rnd.randbytes(32)
        index = 100 + pid
        kp = plane._make_keypair(k1, k2, index, 200 + pid, True, NOW - sc.kp_age[pid], None,  # type: ignore[arg-type]
                                 pid)
        kp.send_counter = sc.counter_start[pid]
        if sc.fast_rx[pid]:
            plane._set_fast_rx(kp)
        else:
            kp.set_fast_rx(False) if hasattr(kp, "set_fast_rx") else setattr(kp, "fast_rx", False)
        if sc.has_kp[pid]:
            plane._peer_set_keypair(pid, kp)  # type: ignore[arg-type]
        if sc.fast_tx[pid]:
            plane._peer_fast_tx(pid, True, 0)
        remotes[index] = Keypair(k2, k1, 200 + pid, index, False, NOW)
    plane._set_routes(routes)
    return remotes


def inner(rnd: random.Random, src_pid: int, dst_pid: int, v6: bool, size: int) -> bytes:
    payload = rnd.randbytes(size)
    if v6:
        return ipv6_packet(f"fd00:0:0:{src_pid}::5", f"fd00:0:0:{dst_pid}::9", payload)
    return ipv4_packet(f"10.0.{src_pid}.5", f"10.0.{dst_pid}.9", payload)


def tun_batch(rnd: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        kind = rnd.choice(["v4", "v6", "v4", "noroute", "junk", "short"])
        if kind in ("v4", "v6"):
            out.append(inner(rnd, 9, rnd.randrange(PEERS), kind == "v6", rnd.choice([0, 1, 100, 1400])))
        elif kind == "noroute":
            out.append(ipv4_packet("10.9.9.9", "10.99.0.1", b"x"))
        elif kind == "junk":
            out.append(rnd.randbytes(rnd.randrange(0, 60)))
        else:
            out.append(bytes([0x45]) + bytes(10))
    return out


def udp_batch(rnd: random.Random, remotes: dict[int, Keypair], n: int) -> list[tuple[bytes, tuple[str, int]]]:
    out: list[tuple[bytes, tuple[str, int]]] = []
    sealed: list[bytes] = []
    for _ in range(n):
        src = rnd.choice(UNDERLAY + [("198.51.100.7", 999), ("2001:db8::99", 7)])
        index = rnd.choice(list(remotes))
        pid = index - 100
        kind = rnd.choice(["data", "data", "keepalive", "spoof", "badinner", "replay", "tamper", "handshake",
                           "unknown-index", "junk", "reserved", "relay"])
        kp = remotes[index]
        if kind == "data":
            msg = kp.seal(inner(rnd, pid, 7, rnd.random() < 0.5, rnd.choice([0, 3, 500])), rnd.choice([0, 1420]))
        elif kind == "keepalive":
            msg = kp.seal(b"", 1420)
        elif kind == "spoof":
            msg = kp.seal(inner(rnd, (pid + 1) % PEERS, 7, False, 10), 0)
        elif kind == "badinner":
            msg = kp.seal(rnd.choice([b"\x45" + bytes(30), b"\x99" * 40, b"\x60" + bytes(20)]), 0)
        elif kind == "replay" and sealed:
            msg = rnd.choice(sealed)
        elif kind == "tamper":
            m = kp.seal(b"abc", 0)
            msg = m[:20] + bytes([m[20] ^ 4]) + m[21:]
        elif kind == "handshake":
            msg = bytes([rnd.choice([1, 2, 3]), 0, 0, 0]) + rnd.randbytes(rnd.choice([0, 60, 88, 144]))
        elif kind == "unknown-index":
            msg = b"\x04\0\0\0" + (77).to_bytes(4, "little") + rnd.randbytes(40)
        elif kind == "reserved":
            msg = b"\x04\0\1\0" + rnd.randbytes(40)
        elif kind == "relay":  # a relay frame (well-formed or not): always a slow item for Python (wgpy.relay)
            msg = bytes([5, rnd.choice([0, 1, 9])]) + rnd.randbytes(rnd.choice([0, 2, 82, 200]))
        else:
            msg = rnd.randbytes(rnd.randrange(0, 40))
        sealed.append(msg)
        out.append((msg, src))
    return out


def native_encrypt(plane: NativeDataPlane, packets: list[bytes], now: float,
                   res: BatchResult) -> list[tuple[bytes, int] | None]:
    """The native TX batch through the binding (``Context.encrypt_batch``), its result converted as the shell does."""
    raw = _native.Result(len(packets) + 1, len(packets) + 1, sum(map(len, packets)) + 1)
    out = plane.ctx.encrypt_batch(packets, now, raw)
    convert_result(raw, res)
    return out


def native_decrypt(plane: NativeDataPlane, datagrams: list[tuple[bytes, Endpoint]], now: float,
                   res: BatchResult) -> list[bytes | None]:
    """The native RX batch through the binding (``Context.decrypt_batch``), its result converted as the shell does."""
    items = [(d, endpoint_to_addr(src) or (0, bytes(16), 0)) for d, src in datagrams]
    raw = _native.Result(len(items) + 1, len(items) + 1, sum(len(d) for d, _ in items) + 1)
    out = plane.ctx.decrypt_batch(items, now, raw)
    convert_result(raw, res)
    return out


def same(a: BatchResult, b: BatchResult) -> None:
    assert a.events == b.events
    assert a.slow == b.slow
    assert +a.drops == +b.drops
    assert +a.io_drops == +b.io_drops


@settings(max_examples=80)
@given(scenarios, st.integers(0, 40))
def test_encrypt_batch_identical(sc: Scenario, n: int) -> None:
    pure, native = PureDataPlane(), NativeDataPlane()
    build(pure, sc)
    build(native, sc)
    rnd = random.Random(sc.seed ^ 1)
    for _ in range(2):  # twice: slow sequence numbers and cleared fast_tx carry over
        batch = tun_batch(rnd, n)
        rp, rn = BatchResult(), BatchResult()
        assert pure.encrypt_batch(batch, NOW, rp) == native_encrypt(native, batch, NOW, rn)
        same(rp, rn)


@settings(max_examples=80)
@given(scenarios, st.integers(0, 40))
def test_decrypt_batch_identical(sc: Scenario, n: int) -> None:
    pure, native = PureDataPlane(), NativeDataPlane()
    remotes = build(pure, sc)
    build(native, sc)
    rnd = random.Random(sc.seed ^ 2)
    batch = udp_batch(rnd, remotes, n)
    rp, rn = BatchResult(), BatchResult()
    assert pure.decrypt_batch(batch, NOW, rp) == native_decrypt(native, batch, NOW, rn)
    same(rp, rn)


def test_decrypt_batch_delivers_and_roams() -> None:
    sc = Scenario(1, [True] * 3, [True] * 3, [0.0] * 3, [True] * 3, [0] * 3, 1420)
    native = NativeDataPlane()
    remotes = build(native, sc)
    pkt = inner(random.Random(3), 1, 7, False, 50)
    msg = remotes[101].seal(pkt, 1420)
    res = BatchResult()
    assert native_decrypt(native, [(msg, ("203.0.113.5", 4242))], NOW, res) == [pkt]
    assert res.events[0].peer_id == 1 and res.events[0].endpoint == ("203.0.113.5", 4242)
    assert (res.events[0].messages, res.events[0].data, res.events[0].bytes) == (1, 1, len(msg))
    # the new endpoint is used for sending at once
    out = BatchResult()
    sent = native_encrypt(native, [inner(random.Random(4), 9, 1, False, 10)], NOW, out)
    assert sent[0] is not None and sent[0][1] == 1 and not out.slow


def test_every_native_drop_code_is_named() -> None:
    """The C drop codes (``WGDP_DROP_*``) are each a protocol drop or an I/O drop, never both or neither."""
    codes = set(range(1, _native.lib.WGDP_DROP_COUNT))
    assert set(_native.DROP_REASONS) | set(_native.IO_DROPS) == codes
    assert not set(_native.DROP_REASONS) & set(_native.IO_DROPS)
