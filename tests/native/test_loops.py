"""The native I/O loops on real sockets, without root: TX and RX threads in C, fed hostile input.

Two contexts, ``a`` (sending) and ``b`` (receiving), share one session.  A
Unix datagram socketpair stands in for each TUN fd (one read or write is one
packet, as on a TUN); the UDP sockets are real ones on 127.0.0.1, so with
UDP GSO on, ``a`` sends ``UDP_SEGMENT`` trains and ``b`` (``UDP_GRO``) receives
coalesced datagrams and splits them.  The tests check that whatever ``b``
writes to its "TUN" is a packet ``a`` was given, byte for byte; that
hostile virtio-net headers, junk datagrams (also GSO-coalesced junk) and
forged transport messages are counted drops, as are writes to a full "TUN"
(``tun-queue-full``); and that keypair and peer
churn from another thread while traffic flows leaves both loops running and
stopping cleanly; and that results the loops publish after the peer's id
was reassigned (a new generation) are never credited to the new peer.  The same tests run under ASan+UBSan and TSan builds
(``test_sanitizers.py``).
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import threading
import time
from typing import Iterator

import pytest

from wgpy import _native
from wgpy.offload import tso_split
from wgsupport import ipv4_packet, ipv6_packet

from test_offload_diff import tcp_packet, vnet

PID = 1
WAIT = 10.0
"""Upper bound on waiting for packets to come out (the tests assert what comes out, not when)."""
SOL_UDP, UDP_SEGMENT = 17, 103
GSO_TCPV4, GSO_TCPV6 = 1, 4


class Loops:
    """Contexts ``a`` -> ``b`` with their loop threads, sockets and one session."""

    def __init__(self, vnet_hdr: bool, gso: bool, queues: int = 1) -> None:
        self.vnet_hdr = vnet_hdr
        self.a, self.b = _native.Context(), _native.Context()
        self.ua = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.ua, self.ub):
            s.bind(("127.0.0.1", 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setblocking(False)
        self.ta_app, self.ta_loop = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tb_loop, self.tb_app = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self.ta_loop, self.tb_loop, self.tb_app):
            s.setblocking(False)
        self.ta_app.settimeout(WAIT)
        # queues > 1: a has a TX loop per queue, each on a "TUN queue" of its own; b has an RX loop per
        # queue, all on b's one UDP socket, all writing to the one "TUN" fd (so their order shows)
        self.queue_pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(queues - 1)]
        for app, lp in self.queue_pairs:
            lp.setblocking(False)
            app.settimeout(WAIT)
            for s in (app, lp):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        for s in (self.ta_app, self.ta_loop, self.tb_loop, self.tb_app):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        for ctx in (self.a, self.b):
            ctx.set_offloads(gso, gso)
            ctx.set_tun_vnet(vnet_hdr)
        self.a.set_routes([(4, 24, bytes([10, 0, 1, 0]), PID), (6, 64, _v6("fd00:0:0:1::"), PID)])
        self.b.set_routes([(4, 24, bytes([10, 0, 0, 0]), PID), (6, 64, _v6("fd00:0:0:0::"), PID)])
        self.keypairs: list[_native.NativeKeypair] = []
        self.generation = 0
        self.peer_generation = 0
        self.seq_a = 0
        self.lock = threading.Lock()
        self.add_peers()
        self.install()
        self.rc: dict[str, int] = {}
        self.events: dict[str, list[tuple[int, int, int, int, int, _native.Addr]]] = {
            "atx": [], "arx": [], "btx": [], "brx": []}
        self.results = {k: _native.Result(events=4096, slow=_native.MAILBOX_SLOTS, slow_bytes=_native.MAILBOX_BYTES)
                        for k in ("atx", "arx", "btx", "brx")}
        self.drops: dict[str, dict[int, int]] = {"a": {}, "b": {}}
        self.threads = [
            threading.Thread(target=self._run, args=("tx", lambda: self.a.tun_to_udp(
                self.ta_loop.fileno(), self.ua.fileno(), -1, 128, 5))),
            threading.Thread(target=self._run, args=("rx", lambda: self.b.udp_to_tun(
                self.ub.fileno(), -1, self.tb_loop.fileno(), 128, 5))),
        ]
        for q, (_app, lp) in enumerate(self.queue_pairs, 1):
            self.threads += [
                threading.Thread(target=self._run, args=(f"tx{q}", _queue_step(self.a.tun_to_udp, q, lp.fileno(),
                                                                               self.ua.fileno(), -1))),
                threading.Thread(target=self._run, args=(f"rx{q}", _queue_step(self.b.udp_to_tun, q, self.ub.fileno(),
                                                                               -1, self.tb_loop.fileno()))),
            ]
        for t in self.threads:
            t.start()

    def _run(self, name: str, step: object) -> None:
        self.rc[name] = step()  # type: ignore[operator]

    # ---------------------------------------------------------------- control-plane side
    def add_peers(self) -> None:
        self.seq_a = 0  # a new peer starts its slow sequence again
        self.peer_generation += 1
        self.a.peer_add(PID, self.peer_generation)
        self.b.peer_add(PID, self.peer_generation)
        self.a.peer_set_endpoint(PID, (4, bytes([127, 0, 0, 1]).ljust(16, b"\0"), self.ub.getsockname()[1]))

    def install(self) -> None:
        """A fresh session on both sides (new keys and indices); the old keypairs are zeroed."""
        with self.lock:
            self.generation += 1
            ia, ib = 2 * self.generation + 1, 2 * self.generation + 2
            k1, k2, now = os.urandom(32), os.urandom(32), time.monotonic()
            kpa = _native.NativeKeypair(self.a, k1, k2, ia, ib, True, now, peer_id=PID)
            kpb = _native.NativeKeypair(self.b, k2, k1, ib, ia, False, now, peer_id=PID)
            kpb.set_fast_rx(True)
            self.a.peer_set_keypair(PID, kpa)
            self.b.peer_set_keypair(PID, kpb)
            self.a.peer_enable_fast_tx(PID, self.seq_a)
            old, self.keypairs = self.keypairs, [kpa, kpb]
        for kp in old:
            kp.zero()

    def drain(self) -> None:
        """What the loops published: counters, drops, slow items (their seq re-enables fast TX)."""
        for side, ctx, tx, rx in (("a", self.a, "atx", "arx"), ("b", self.b, "btx", "brx")):
            rtx, rrx = self.results[tx], self.results[rx]
            ctx.drain(rtx, rrx)
            self.events[tx] += rtx.events()
            self.events[rx] += rrx.events()
            for res in (rtx, rrx):
                for code, n in res.drops().items():
                    self.drops[side][code] = self.drops[side].get(code, 0) + n
            if side == "a":
                for _data, _pid, _gen, seq, _src in rtx.slow():
                    self.seq_a = seq  # the last one handed over (as wgpy.io.fastpath keeps it)
        with self.lock:
            self.a.peer_enable_fast_tx(PID, self.seq_a)

    # ---------------------------------------------------------------- data side
    def write_tun(self, packet: bytes, header: bytes | None = None, queue: int = 0) -> None:
        """One read for a's TX loop (of ``queue``): the packet, behind a virtio-net header when the TUN has them."""
        if self.vnet_hdr:
            packet = (header if header is not None else bytes(10)) + packet
        (self.queue_pairs[queue - 1][0] if queue else self.ta_app).send(packet)

    def read_tun(self, want: int, timeout: float = WAIT) -> list[bytes]:
        """Packets b wrote (GSO writes split again), until ``want`` arrived or ``timeout`` passed."""
        out: list[bytes] = []
        end = time.monotonic() + timeout
        quiet = 0
        while len(out) < want and time.monotonic() < end and quiet < 20:  # 20 quiet polls: nothing more comes
            self.drain()
            ready, _, _ = select.select([self.tb_app], [], [], 0.05)
            quiet = 0 if ready or not out else quiet + 1
            for _ in range(4096):
                try:
                    data = self.tb_app.recv(65600)
                except BlockingIOError:
                    break
                if self.vnet_hdr:
                    split = tso_split(data)
                    assert split is not None, data[:10].hex()
                    out += split
                else:
                    out.append(data)
        return out

    def close(self) -> None:
        for ctx in (self.a, self.b):
            ctx.stop(True)
        for t in self.threads:
            t.join(WAIT)
        alive = [t for t in self.threads if t.is_alive()]
        for s in (self.ua, self.ub, self.ta_app, self.ta_loop, self.tb_loop, self.tb_app,
                  *(s for pair in self.queue_pairs for s in pair)):
            s.close()
        assert not alive, "a loop did not stop"
        assert self.rc == {"tx": 0, "rx": 0, **{f"{d}{q}": 0 for q in range(1, len(self.queue_pairs) + 1)
                                                for d in ("tx", "rx")}}, self.rc


def _queue_step(run: object, queue: int, *fds: int) -> object:
    return lambda: run(*fds, 128, 5, queue)  # type: ignore[operator]


def _v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


@pytest.fixture(params=[(False, False), (False, True), (True, True)], ids=["plain", "udp-gso", "vnet+gso"])
def loops(request: pytest.FixtureRequest) -> Iterator[Loops]:
    lp = Loops(*request.param)
    try:
        yield lp
    finally:
        lp.close()


def _traffic(rnd: random.Random, n: int) -> list[bytes]:
    """Inner packets a routes to the peer and b accepts from it: UDP over v4/v6, equal sizes in runs."""
    out = []
    size = rnd.choice([0, 1, 100, 1000, 1300])
    for i in range(n):
        if i % 16 == 0:
            size = rnd.choice([0, 1, 100, 1000, 1300])
        payload = rnd.randbytes(size)
        if rnd.random() < 0.7:
            out.append(ipv4_packet("10.0.0.5", "10.0.1.9", payload))
        else:
            out.append(ipv6_packet("fd00::5", "fd00:0:0:1::9", payload))
    return out


def _tso_reads(rnd: random.Random, n: int) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """TSO super-packets for a's TUN (header, packet) and the segments they must come out as."""
    reads, segs = [], []
    for _ in range(n):
        v6 = rnd.random() < 0.4
        src, dst = ("fd00::1", "fd00:0:0:1::2") if v6 else ("10.0.0.1", "10.0.1.2")
        pkt = _retarget(tcp_packet(v6, rnd.randbytes(rnd.randrange(1, 20000)), 0x18, rnd.getrandbits(32),
                                   rnd.getrandbits(16)), v6, src, dst)
        cstart = 40 if v6 else 20
        hdr = vnet(1, GSO_TCPV6 if v6 else GSO_TCPV4, cstart + 20, rnd.choice([536, 1300]), cstart, 16)
        split = tso_split(hdr + pkt)
        assert split
        reads.append((hdr, pkt))
        segs += split
    return reads, segs


def _retarget(pkt: bytes, v6: bool, src: str, dst: str) -> bytes:
    """tcp_packet's addresses replaced by ours, the partial (pseudo-header) checksum kept right."""
    out = bytearray(pkt)
    if v6:
        out[8:40] = _v6(src) + _v6(dst)
        words = struct.unpack(">16H", bytes(out[8:40]))
        tcp = 40
    else:
        out[12:20] = socket.inet_aton(src) + socket.inet_aton(dst)
        words = struct.unpack(">4H", bytes(out[12:20]))
        tcp = 20
    pseudo = sum(words) + len(pkt) - tcp + 6
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    struct.pack_into(">H", out, tcp + 16, pseudo)
    return bytes(out)


def test_loops_deliver_what_they_were_given(loops: Loops) -> None:
    rnd = random.Random(1)
    sent: list[bytes] = []
    for _ in range(4):
        batch = _traffic(rnd, 64)
        for p in batch:
            loops.write_tun(p)
        sent += batch
        if loops.vnet_hdr:
            reads, segs = _tso_reads(rnd, 4)
            for hdr, pkt in reads:
                loops.write_tun(pkt, hdr)
            sent += segs
    got = loops.read_tun(len(sent))
    assert got, loops.drops
    assert set(got) <= set(sent)


def _hostile_vnet(rnd: random.Random) -> tuple[bytes, bytes]:
    """A virtio-net header that lies (sizes, offsets, GSO type, flags) over a packet that may be short."""
    v6 = rnd.random() < 0.5
    pkt = tcp_packet(v6, rnd.randbytes(rnd.choice([0, 1, 7, 1500, 9000, 64000])), rnd.randrange(256),
                     rnd.getrandbits(32), rnd.getrandbits(16))
    if rnd.random() < 0.3:
        pkt = pkt[:rnd.randrange(len(pkt) + 1)]
    if pkt and rnd.random() < 0.3:
        i = rnd.randrange(len(pkt))
        pkt = pkt[:i] + bytes([rnd.randrange(256)]) + pkt[i + 1:]
    hdr = struct.pack("<BBHHHH", rnd.choice([0, 1, 2, 0xFF]), rnd.choice([0, 1, 3, 4, 5, 0x81, 0x84, 0xFF]),
                      rnd.choice([0, 20, 40, 54, 60, 0xFFFF, rnd.getrandbits(16)]),
                      rnd.choice([0, 1, 2, 536, 1300, 0xFFFF, rnd.getrandbits(16)]),
                      rnd.choice([0, 20, 40, 60, 0xFFFE, rnd.getrandbits(16)]),
                      rnd.choice([0, 6, 16, 0xFFFF, rnd.getrandbits(16)]))
    if rnd.random() < 0.1:
        hdr = rnd.randbytes(10)
    return hdr, pkt


def _junk_datagrams(rnd: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        kind = rnd.randrange(5)
        if kind == 0:
            out.append(rnd.randbytes(rnd.randrange(0, 2000)))
        elif kind == 1:  # transport with the session's index or a random one
            out.append(b"\x04\0\0\0" + struct.pack("<I", rnd.choice([4, 6, rnd.getrandbits(32)]))
                       + rnd.randbytes(rnd.randrange(0, 1500)))
        elif kind == 2:
            out.append(bytes([rnd.choice([1, 2, 3])]) + b"\0\0\0" + rnd.randbytes(rnd.choice([60, 88, 144])))
        elif kind == 3:
            out.append(b"\x04\0\0\0" + rnd.randbytes(rnd.randrange(0, 32)))
        else:
            out.append(b"")
    return out


def test_loops_count_hostile_input() -> None:
    """Lying virtio-net headers into a's TUN; junk, forged transport and GSO-coalesced junk at b."""
    lp = Loops(True, True)
    try:
        rnd = random.Random(7)
        for _ in range(1500):
            hdr, pkt = _hostile_vnet(rnd)
            lp.write_tun(pkt, hdr)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = lp.ub.getsockname()
        for msg in _junk_datagrams(rnd, 1500):
            sender.sendto(msg, target)
        for _ in range(200):  # one send, several datagrams: b gets them coalesced (UDP GRO)
            size = rnd.choice([32, 33, 100, 148, 1400])
            train = b"".join(_junk_datagrams(rnd, 1)[0][:size].ljust(size, b"\x04") for _ in range(rnd.randrange(2, 40)))
            try:
                sender.sendmsg([train], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0, target)
            except OSError:  # EINVAL when the train is too long for one datagram: fine, skip it
                pass
        sender.close()
        good = _traffic(rnd, 8)
        for p in good:
            lp.write_tun(p)
        got = lp.read_tun(1)
        assert got and set(got) <= set(good), lp.drops
        lp.drain()
        assert lp.drops["a"].get(_native.lib.WGDP_DROP_INVALID_INNER_PACKET, 0) > 0, lp.drops
        assert sum(lp.drops["b"].values()) > 1000, lp.drops
    finally:
        lp.close()


def test_loops_survive_keypair_and_peer_churn() -> None:
    """Another thread replaces the session, removes and re-adds the peer and its routes while traffic flows."""
    lp = Loops(True, True)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        rnd = random.Random(11)
        try:
            for i in range(400):
                if stop.is_set():
                    break
                kind = rnd.randrange(4)
                if kind == 0:
                    for ctx in (lp.a, lp.b):
                        ctx.peer_remove(PID)
                    lp.add_peers()
                    lp.install()
                elif kind == 1:
                    lp.a.set_routes([(4, 24, bytes([10, 0, 1, 0]), PID), (4, rnd.randrange(33), os.urandom(4), 2)])
                    lp.b.set_routes([(4, 24, bytes([10, 0, 0, 0]), PID), (6, 64, _v6("fd00::"), PID)])
                else:
                    lp.install()
                lp.a.set_mtu(rnd.choice([1280, 1420]))
                lp.a.peer_set_endpoint(PID, (4, bytes([127, 0, 0, 1]).ljust(16, b"\0"), lp.ub.getsockname()[1]))
                time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            errors.append(exc)

    worker = threading.Thread(target=churn)
    try:
        rnd = random.Random(5)
        sent: set[bytes] = set()
        got: list[bytes] = []
        worker.start()
        while worker.is_alive():
            batch = _traffic(rnd, 32)
            for p in batch:
                lp.write_tun(p)
            sent.update(batch)
            reads, segs = _tso_reads(rnd, 1)
            for hdr, pkt in reads:
                lp.write_tun(pkt, hdr)
            sent.update(segs)
            got += lp.read_tun(1, timeout=0.05)
        worker.join()
        assert not errors, errors
        lp.install()  # a settled session: traffic flows again
        lp.a.set_routes([(4, 24, bytes([10, 0, 1, 0]), PID)])
        lp.b.set_routes([(4, 24, bytes([10, 0, 0, 0]), PID)])
        after: list[bytes] = []
        for i in range(50):  # until fast TX is back on (the drain re-enables it once the slow items are seen)
            final = ipv4_packet("10.0.0.5", "10.0.1.9", b"after churn %d" % i)
            sent.add(final)
            lp.write_tun(final)
            after += lp.read_tun(1, timeout=0.2)
            if after:
                break
        assert after and set(after) <= sent, lp.drops
        assert set(got) <= sent
    finally:
        stop.set()
        worker.join(WAIT) if worker.is_alive() else None
        lp.close()


GEN_SIZES = (60, 124, 252, 508)
"""Inner lengths, one per generation (mod 4): 96, 160, 288 and 544 bytes on the wire (MTU 1420)."""


def _gen_dest(gen: int) -> bytes:
    return bytes([10, 0, 1, 1 + gen % 200])


def _gen_packet(gen: int, i: int) -> bytes:
    size = GEN_SIZES[gen % 4]
    return ipv4_packet("10.0.0.5", socket.inet_ntoa(_gen_dest(gen)), (b"%d.%d:" % (gen, i)).ljust(size - 20, b"."))


def test_loops_never_credit_a_reassigned_id() -> None:
    """The control thread reassigns the peer's id while traffic flows, as ``replace_peers`` does: the
    old keypairs are zeroed, the slot removed and added again with a new generation, then new routes and
    a new session.  Each generation's traffic has its own destination and inner length, so every event
    the loops publish must count exactly messages x that generation's wire length, on both sides: work
    done for the old generation and published late is discarded, never added to the new peer's."""
    lp = Loops(False, True)
    lp.a.set_routes([(4, 32, _gen_dest(lp.peer_generation), PID)])
    current = [lp.peer_generation]
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(150):
                if stop.is_set():
                    break
                time.sleep(0.004)
                with lp.lock:
                    old, lp.keypairs = lp.keypairs, []
                for kp in old:
                    kp.zero()
                for ctx in (lp.a, lp.b):
                    ctx.peer_remove(PID)
                lp.add_peers()
                lp.a.set_routes([(4, 32, _gen_dest(lp.peer_generation), PID)])
                lp.install()
                current[0] = lp.peer_generation
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            errors.append(exc)

    worker = threading.Thread(target=churn)
    try:
        got: list[bytes] = []
        worker.start()
        i = 0
        while worker.is_alive():
            gen = current[0]
            for _ in range(24):
                lp.write_tun(_gen_packet(gen, i))
                i += 1
            got += lp.read_tun(1, timeout=0.02)
        worker.join()
        assert not errors, errors
        got += lp.read_tun(10**6, timeout=0.5)
        lp.drain()
        wire = {g: 32 + (GEN_SIZES[g % 4] + 15) // 16 * 16 for g in range(1, lp.peer_generation + 1)}
        credited: dict[str, set[int]] = {"atx": set(), "brx": set()}
        for key in ("atx", "brx"):
            for pid, gen, messages, data, nbytes, _ep in lp.events[key]:
                assert pid == PID and 1 <= gen <= lp.peer_generation, (key, pid, gen)
                assert data == messages and nbytes == messages * wire[gen], \
                    (key, gen, messages, nbytes, wire[gen])
                credited[key].add(gen)
        assert len(credited["atx"]) > 10 and len(credited["brx"]) > 10, credited
        assert got, lp.drops
    finally:
        stop.set()
        worker.join(WAIT) if worker.is_alive() else None
        lp.close()


def test_loops_count_a_full_tun_queue() -> None:
    """b's "TUN" is not read for a while: its writes fail with EAGAIN and count as tun-queue-full;
    once it is read again, packets come through (the RX loop never stopped)."""
    lp = Loops(False, False)
    try:
        lp.tb_loop.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # room for a few packets only
        rnd = random.Random(3)
        first = _traffic(rnd, 400)
        for p in first:
            lp.write_tun(p)
        for _ in range(50):  # bounded: until the drops are published
            lp.drain()
            if lp.drops["b"].get(_native.lib.WGDP_DROP_TUN_QUEUE_FULL):
                break
            time.sleep(0.05)
        assert lp.drops["b"].get(_native.lib.WGDP_DROP_TUN_QUEUE_FULL, 0) > 0, lp.drops
        lp.read_tun(len(first), timeout=1.0)  # what the queue held
        later = [ipv4_packet("10.0.0.5", "10.0.1.9", b"after the queue was full %d" % i) for i in range(4)]
        for p in later:
            lp.write_tun(p)
        got = lp.read_tun(len(later))
        assert got and set(got) <= set(later), lp.drops
    finally:
        lp.close()


def _numbered(queue: int, i: int) -> bytes:
    return ipv4_packet("10.0.0.5", "10.0.1.9", struct.pack(">HI", queue, i) + bytes(200))


def _number(packet: bytes) -> tuple[int, int]:
    queue, i = struct.unpack_from(">HI", packet, 20)  # behind the IPv4 header
    return int(queue), int(i)


@pytest.mark.parametrize("vnet_hdr,gso", [(False, False), (False, True), (True, True)],
                         ids=["plain", "udp-gso", "vnet+gso"])
def test_multiqueue_rx_loops_keep_the_receive_order(vnet_hdr: bool, gso: bool) -> None:
    """Three RX loops on one socket open batches side by side, yet write them in the order received."""
    lp = Loops(vnet_hdr, gso, queues=3)
    try:
        sent = [_numbered(0, i) for i in range(3000)]
        for p in sent:
            lp.write_tun(p)
        got = lp.read_tun(len(sent))
    finally:
        lp.close()
    assert got, lp.drops
    assert set(got) <= set(sent)
    order = [_number(p)[1] for p in got]
    assert order == sorted(order) and len(set(order)) == len(order)


def test_multiqueue_tx_loops_each_carry_their_queue() -> None:
    """A TX loop per queue: what each queue was given arrives, in that queue's order."""
    lp = Loops(False, True, queues=3)
    try:
        sent = [_numbered(q, i) for i in range(800) for q in range(3)]
        for p in sent:
            lp.write_tun(p, queue=_number(p)[0])
        got = lp.read_tun(len(sent))
    finally:
        lp.close()
    assert set(got) <= set(sent)
    by_queue: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for p in got:
        q, i = _number(p)
        by_queue[q].append(i)
    for q, order in by_queue.items():
        assert order, (q, lp.drops)
        assert order == sorted(order), q
