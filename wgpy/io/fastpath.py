"""The runner's native mode: two threads sit in the C data plane's I/O loops.

Contract (architecture.md "Two planes", wireguard.md §10): ``enabled()`` says
whether native mode is possible (the lib is loaded, ``WGPY_FASTPATH`` is not
0) and ``tun_offload_wanted()`` whether a TUN should then be opened with
virtio-net offload (``WGPY_TUN_OFFLOAD`` not 0: IFF_VNET_HDR, TSO split on
read and GRO on write in C); ``wgpy.interface`` asks them and builds the
device with a ``NativeDataPlane``, which the runner hands to ``FastPath``
with the TUN.  Its TX thread runs ``wgdp_tun_to_udp`` (TUN reads -> route ->
seal -> ``sendmmsg`` per family) and its RX thread ``wgdp_udp_to_tun``
(``recvmmsg`` on the v4 and v6 sockets -> open -> replay -> source check ->
TUN writes); both stay in C with the GIL released until ``stop()``, and
never enter Python.  What Python must see -- slow items (handshake messages,
unconfirmed keypairs, peers without a usable keypair), per-peer counters for
the timer hooks and roaming, drop counts -- goes to the context's mailbox
(slow items are bounded per direction, in count and bytes, by
``wgdp_mbox.c``; beyond that they are dropped and counted as
``slow-overflow``; RX handshake messages, whose mac1 the RX thread has
checked, have a ring of their own whose overflow is ``handshake-queue-full``), whose eventfd the event loop watches; ``_on_mailbox``
drains it in one call and hands the TX and RX ``BatchResult`` to the
runner's ``on_batch`` callback, which runs the device on the loop thread.
So a handshake flood costs the data threads nothing but the mailbox copy.
UDP GSO/GRO are on unless ``WGPY_UDP_GSO=0`` / ``WGPY_UDP_GRO=0`` (and go off
by themselves when the kernel refuses them).

Multi-queue: ``tun_queues()`` is how many queues a TUN should get, one per CPU
this process may run on (``WGPY_TUN_QUEUES=N`` sets it; at most ``MAX_QUEUES``),
or 1 with ``WGPY_TUN_MULTIQUEUE=0`` or without the native plane.  ``FastPath`` runs a
TX and an RX thread per queue of the TUN it is given (``TunDevice.queue_fds``):
the kernel spreads flows over the queues, each TX thread seals the flows of
its queue, and the RX threads share the UDP sockets: queue 0's receives, the
others join in while the sockets have a backlog, batches are opened in
parallel and written to the TUN in the order they were received
(``wgdp_queues.c``).  With one queue that is the pair of threads of before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from typing import Callable

from .. import _native
from ..constants import MESSAGE_TRANSPORT
from ..dataplane import BatchResult, NativeDataPlane, convert_result
from .tun_linux import GONE_ERRNOS, TunDevice
from .udp import UdpBind

log = logging.getLogger("wgpy.fastpath")

BATCH = 128
FLUSH_MS = 10
"""How long per-peer counters may wait in the mailbox (slow items are signalled at once)."""
EVENTS = 4096
FLOOD_SLOW = 200
"""A drain with this many handshake messages means a handshake flood: the loop then
waits FLOOD_PAUSE before draining again, so Python's handshake work (bounded
per step anyway) cannot take a whole core from the data threads."""
FLOOD_PAUSE = 0.005
MAX_QUEUES = 8
"""At most this many TUN queues (and TX/RX thread pairs), however many CPUs."""


def enabled() -> bool:
    """Native mode is possible: the lib is loaded and not switched off."""
    return _native.available() and os.environ.get("WGPY_FASTPATH", "1") != "0"


def tun_queues() -> int:
    """TUN queues to open: one per CPU this process may use (``WGPY_TUN_QUEUES=N``: N), capped at
    ``MAX_QUEUES``; 1 when native mode is off or ``WGPY_TUN_MULTIQUEUE`` is 0.  A ``WGPY_TUN_QUEUES``
    that is not a positive integer fails loudly (ValueError)."""
    if not enabled() or os.environ.get("WGPY_TUN_MULTIQUEUE", "1") == "0":
        return 1
    wanted = os.environ.get("WGPY_TUN_QUEUES")
    if wanted is not None:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ValueError(f"WGPY_TUN_QUEUES must be a positive integer, not {wanted!r}")
        count = int(wanted)
    else:
        try:
            count = len(os.sched_getaffinity(0))
        except OSError:
            count = os.cpu_count() or 1
    return max(1, min(count, MAX_QUEUES, int(_native.lib.WGDP_MAX_QUEUES)))


def tun_offload_wanted() -> bool:
    """Open TUN devices with virtio-net offload: native mode on and ``WGPY_TUN_OFFLOAD`` not 0."""
    return enabled() and os.environ.get("WGPY_TUN_OFFLOAD", "1") != "0"


class FastPath:
    """TX and RX threads around one native context; the loop drains its mailbox."""

    def __init__(self, plane: NativeDataPlane, tun: TunDevice,
                 on_batch: Callable[[BatchResult, BatchResult], None], on_gone: Callable[[], None]) -> None:
        self.plane = plane
        self.tun = tun
        self._on_batch = on_batch
        """Called on the loop thread with each drained (TX, RX) pair of batch results."""
        self._on_gone = on_gone
        """Called on the loop thread when a data thread finds the TUN deleted."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._efd = plane.ctx.notify_fd()
        self._tx = _native.Result(events=EVENTS, slow=_native.MAILBOX_SLOTS, slow_bytes=_native.MAILBOX_BYTES)
        self._rx = _native.Result(events=EVENTS, slow=_native.MAILBOX_SLOTS, slow_bytes=_native.MAILBOX_BYTES)
        self._pause: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop, bind: UdpBind) -> None:
        """Start both threads on the TUN and ``bind``'s sockets; the loop watches the mailbox."""
        self._loop = loop
        ctx = self.plane.ctx
        ctx.stop(False)
        queues = self.tun.queue_fds
        s4, s6 = _fds(bind)
        ctx.set_tun_vnet(self.tun.vnet_hdr)
        gso, gro = ctx.set_offloads(os.environ.get("WGPY_UDP_GSO", "1") != "0",
                                    os.environ.get("WGPY_UDP_GRO", "1") != "0")
        loop.add_reader(self._efd, self._on_mailbox)
        self._threads = []
        for q, fd in enumerate(queues):
            suffix = "" if len(queues) == 1 else f"-{q}"
            self._threads += [
                threading.Thread(target=self._run_loop, name=f"wgpy-tx{suffix}", daemon=True,
                                 args=("tx", _tx_step(ctx, q, fd, s4, s6))),
                threading.Thread(target=self._run_loop, name=f"wgpy-rx{suffix}", daemon=True,
                                 args=("rx", _rx_step(ctx, q, fd, s4, s6))),
            ]
        for thread in self._threads:
            thread.start()
        log.info("native data plane running (TX and RX threads for %d TUN queue%s; UDP GSO %s, GRO %s; "
                 "TUN offload %s)", len(queues), "" if len(queues) == 1 else "s",
                 "on" if gso else "off", "on" if gro else "off", "on" if self.tun.vnet_hdr else "off")

    def stop(self) -> None:
        """Stop both threads and wait for them (at most one poll interval); what they published stays in the
        mailbox for the next drain (``flush`` or a restart)."""
        self.plane.ctx.stop(True)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = []
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._efd)

    # ------------------------------------------------------------ threads
    def _run_loop(self, direction: str, step: Callable[[], int]) -> None:
        try:
            rc = step()
        except Exception:  # a bug, not remote input: say so loudly
            log.exception("native %s loop failed", direction)
            return
        if rc < 0:
            code = -rc
            if code in GONE_ERRNOS:
                self._call(self._on_gone)
            else:
                log.error("native %s loop: %s", direction, errno.errorcode.get(code, code))

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # loop closed meanwhile
            pass

    # ------------------------------------------------------------ loop side
    def flush(self) -> None:
        """Hand everything the loops published so far to ``on_batch`` now (e.g. before a UAPI get)."""
        self._on_mailbox()

    def _on_mailbox(self) -> None:
        """The eventfd fired: drain the mailbox and hand it to ``on_batch``."""
        self.plane.ctx.drain(self._tx, self._rx)
        tx, rx = BatchResult(), BatchResult()
        convert_result(self._tx, tx)
        convert_result(self._rx, rx)
        self._on_batch(tx, rx)
        handshakes = sum(1 for item in rx.slow if item.data[0] != MESSAGE_TRANSPORT)
        if handshakes >= FLOOD_SLOW and self._loop is not None and self._pause is None:
            self._loop.remove_reader(self._efd)
            self._pause = self._loop.call_later(FLOOD_PAUSE, self._resume)

    def _resume(self) -> None:
        self._pause = None
        if self._loop is not None and self._threads:
            self._loop.add_reader(self._efd, self._on_mailbox)


def _tx_step(ctx: _native.Context, queue: int, fd: int, s4: int, s6: int) -> Callable[[], int]:
    return lambda: ctx.tun_to_udp(fd, s4, s6, BATCH, FLUSH_MS, queue)


def _rx_step(ctx: _native.Context, queue: int, fd: int, s4: int, s6: int) -> Callable[[], int]:
    return lambda: ctx.udp_to_tun(s4, s6, fd, BATCH, FLUSH_MS, queue)


def _fds(bind: UdpBind) -> tuple[int, int]:
    return bind.v4.fileno(), bind.v6.fileno() if bind.v6 is not None else -1
