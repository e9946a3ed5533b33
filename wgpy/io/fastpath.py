"""The runner's native mode: two threads drive the C data plane's I/O loops.

Contract (architecture.md "Two planes", wireguard.md §10): when the native
data plane is available and the runner owns a TUN device, ``attach`` gives
the device a ``NativeDataPlane`` and returns a ``FastPath``.  Its TX thread
loops in ``wgdp_tun_to_udp`` (TUN reads -> route -> seal -> ``sendmmsg`` per
family) and its RX thread in ``wgdp_udp_to_tun`` (``recvmmsg`` on the v4 and
v6 sockets -> open -> replay -> source check -> TUN writes), both with the
GIL released.  The C loops return only when Python has work: slow items
(handshake messages, unconfirmed keypairs, peers without a usable
keypair), per-peer events due (every ``FLUSH_MS``), a poll timeout, or a dead
TUN.  The thread converts that into a ``BatchResult`` and posts it to the
event loop with ``call_soon_threadsafe``; the ``Device`` is only ever touched
on the loop thread (``Runner._run``).  At most ``MAX_INFLIGHT`` posts wait per
direction; beyond that slow items are dropped and counted (events are kept),
so a handshake flood cannot grow memory while data keeps flowing in C.
UDP GSO/GRO are on unless ``WGPY_UDP_GSO=0`` / ``WGPY_UDP_GRO=0`` (and go off
by themselves when the kernel refuses them); TUN TSO offload (IFF_VNET_HDR,
split on read) unless ``WGPY_TUN_OFFLOAD=0``.  ``WGPY_FASTPATH=0`` keeps the
runner on its pure asyncio path.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from typing import TYPE_CHECKING, Callable

from .. import _native
from ..dataplane import (
    BatchResult, NativeDataPlane, apply_rx_result, apply_tx_result, convert_result,
)
from ..device import Action
from .tun_linux import GONE_ERRNOS

if TYPE_CHECKING:
    from .runner import Runner
    from .udp import UdpBind

log = logging.getLogger("wgpy.fastpath")

BATCH = 128
POLL_MS = 100
FLUSH_MS = 20
MAX_INFLIGHT = 64
SLOT = 65536


def enabled() -> bool:
    """Native mode is possible: the lib is loaded and not switched off."""
    return _native.available() and os.environ.get("WGPY_FASTPATH", "1") != "0"


def tun_offload_wanted() -> bool:
    """Open TUN devices with virtio-net offload: native mode on and ``WGPY_TUN_OFFLOAD`` not 0."""
    return enabled() and os.environ.get("WGPY_TUN_OFFLOAD", "1") != "0"


def attach(runner: Runner) -> FastPath | None:
    """Give ``runner.device`` a native data plane and return the fast path (None: pure mode)."""
    if runner.tun is None or not enabled():
        return None
    plane = NativeDataPlane()
    runner.device.dataplane = plane
    plane.sync_config(runner.device)
    return FastPath(runner, plane)


class FastPath:
    """TX and RX threads around one native context, posting work to the loop."""

    def __init__(self, runner: Runner, plane: NativeDataPlane) -> None:
        self.runner = runner
        self.plane = plane
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._inflight = {"tx": 0, "rx": 0}

    # ------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stopping.clear()
        self.plane.ctx.stop(False)
        bind = self.runner.bind
        assert self.runner.tun is not None
        tun_fd = self.runner.tun.fd
        s4, s6 = _fds(bind)
        self.plane.ctx.set_tun_vnet(self.runner.tun.vnet_hdr)
        gso, gro = self.plane.ctx.set_offloads(os.environ.get("WGPY_UDP_GSO", "1") != "0",
                                               os.environ.get("WGPY_UDP_GRO", "1") != "0")
        self._threads = [
            threading.Thread(target=self._run_loop, name="wgpy-tx", daemon=True,
                             args=("tx", lambda res: self.plane.ctx.tun_to_udp(
                                 tun_fd, s4, s6, BATCH, POLL_MS, FLUSH_MS, res))),
            threading.Thread(target=self._run_loop, name="wgpy-rx", daemon=True,
                             args=("rx", lambda res: self.plane.ctx.udp_to_tun(
                                 s4, s6, tun_fd, BATCH, POLL_MS, FLUSH_MS, res))),
        ]
        for thread in self._threads:
            thread.start()
        log.info("native data plane running (TX and RX threads; UDP GSO %s, GRO %s; TUN offload %s)",
                 "on" if gso else "off", "on" if gro else "off", "on" if self.runner.tun.vnet_hdr else "off")

    def stop(self) -> None:
        """Stop both threads and wait for them (at most one poll timeout)."""
        self._stopping.set()
        self.plane.ctx.stop(True)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = []

    def restart(self) -> None:
        """After the runner swapped its UDP bind: the threads pick up the new sockets."""
        if self._loop is not None:
            self.stop()
            self.start(self._loop)

    # ------------------------------------------------------------ threads
    def _run_loop(self, direction: str, step: Callable[[_native.Result], int]) -> None:
        res = _native.Result(events=4 * BATCH, slow=4 * BATCH, slow_bytes=(BATCH + 1) * SLOT)
        while not self._stopping.is_set():
            res.reset()
            try:
                rc = step(res)
            except Exception:  # a bug, not remote input: stop this direction loudly
                log.exception("native %s loop failed", direction)
                return
            if not res.empty():
                self._post(direction, res)
            if rc < 0:
                code = -rc
                if code in GONE_ERRNOS:
                    self._call(lambda: self.runner.stop("tun-gone"))
                else:
                    log.error("native %s loop: %s", direction, errno.errorcode.get(code, code))
                return

    def _post(self, direction: str, res: _native.Result) -> None:
        batch = BatchResult()
        with self._lock:
            crowded = self._inflight[direction] >= MAX_INFLIGHT
            self._inflight[direction] += 1
        if crowded and res.c.n_slow:
            batch.io_drops["slow-overflow"] += int(res.c.n_slow)
            res.c.n_slow = 0
        convert_result(res, batch)
        handler = self._on_tx if direction == "tx" else self._on_rx
        self._call(lambda: handler(batch))

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # loop closed meanwhile
            pass

    # ------------------------------------------------------------ loop side
    def _on_tx(self, batch: BatchResult) -> None:
        with self._lock:
            self._inflight["tx"] -= 1
        self.runner.io_drops.update(batch.io_drops)
        done = self.plane.tx_seq_done
        for item in batch.slow:
            done[item.peer_id] = item.seq

        def step(now: float) -> list[Action]:
            dev = self.runner.device
            out = apply_tx_result(dev, self.plane, batch, now)
            if batch.slow:
                out += dev.tun_packets([item.data for item in batch.slow], now)
            return out

        self.runner._run(step)

    def _on_rx(self, batch: BatchResult) -> None:
        with self._lock:
            self._inflight["rx"] -= 1
        self.runner.io_drops.update(batch.io_drops)

        def step(now: float) -> list[Action]:
            dev = self.runner.device
            out = apply_rx_result(dev, self.plane, batch, now)
            if batch.slow:
                out += dev.datagrams_received(
                    [(item.data, item.src) for item in batch.slow if item.src is not None], now)
            return out

        self.runner._run(step)


def _fds(bind: UdpBind) -> tuple[int, int]:
    return bind.v4.fileno(), bind.v6.fileno() if bind.v6 is not None else -1
