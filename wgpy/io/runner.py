"""The asyncio shell around one ``wgpy.device.Device``.

Contract (architecture.md "Runtime shell"; aioquic's ``transmit()``): the
runner is the one place that calls the device.  On its pure path it
registers the TUN fd and the UDP sockets as loop readers, drains each up to
``BATCH`` packets per wakeup and feeds the batch to the device in one call;
in native mode (a ``NativeDataPlane`` handed in with the TUN: ``Runner(...,
plane=...)``) a ``wgpy.io.fastpath.FastPath`` owns those fds and the runner
feeds the device the batch results it drains.  Either way it performs the
returned actions (``SendDatagram`` on the socket of the endpoint's family,
``WriteTun`` to the TUN or to the caller's ``deliver`` callback,
``Unreachable`` to the TUN, rate limited as the kernel module does and
dropped without a TUN) and keeps exactly one ``loop.call_later`` armed from
``device.next_deadline()``.  It owns the UDP bind and applies configuration
updates so that a new ``listen_port`` is bound *before* the update is
applied: ``configure`` changes nothing when it raises (``ConfigError`` from
the device, ``OSError`` from the bind; turning them into ``UapiError`` is
the caller's).  It never lets an exception from a packet escape into the
loop: transient send/write failures are counted in ``io_drops``; a TUN read
error after the interface is deleted ends the runner (``closed`` resolves
with the reason).  No protocol logic lives here.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import socket
import time
from typing import Callable

from ..actions import Action, SendDatagram, Unreachable, WriteTun
from ..config import DeviceUpdate
from ..dataplane import BatchResult, NativeDataPlane
from ..device import Device
from ..errors import ConfigError
from .fastpath import FastPath
from .tun_linux import GONE_ERRNOS, TunDevice, tun_write_drop
from .udp import UdpBind, recv_batch

log = logging.getLogger("wgpy.runner")

BATCH = 128
MIN_TIMER_DELAY = 0.001
ICMP_PER_SECOND = 10.0
ICMP_BURST = 10.0


class Runner:
    """Moves bytes between the fds and the device; one timer drives its clock."""

    def __init__(self, device: Device, bind: UdpBind, tun: TunDevice | None = None,
                 deliver: Callable[[bytes], None] | None = None, plane: NativeDataPlane | None = None) -> None:
        if (tun is None) == (deliver is None):
            raise ValueError("give exactly one of tun or deliver")
        if plane is not None and (tun is None or device.dataplane is not plane):
            raise ValueError("a native plane needs the TUN and must be the device's data plane")
        self.device = device
        self.bind = bind
        self.tun = tun
        self._deliver = deliver
        self.io_drops: collections.Counter[str] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._readers: list[int] = []
        self.closed: asyncio.Future[str] | None = None
        self.link_up = False
        self._icmp_tokens = ICMP_BURST
        self._icmp_refill = 0.0
        device.listen_port = bind.port
        self.fast = None if plane is None or tun is None else FastPath(
            plane, tun, self._on_native_batch, functools.partial(self.stop, "tun-gone"))
        """The native mode (TUN/UDP served by C threads), or None: the pure asyncio path."""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()
        if self.fast is not None:
            self.fast.start(self._loop, self.bind)
        else:
            if self.tun is not None:
                self._add_reader(self.tun.fd, self._on_tun_readable)
            self._register_bind(self.bind)
        self.rearm()

    def stop(self, reason: str = "stopped") -> None:
        """Unregister everything (fds stay open; the owner closes them)."""
        if self.fast is not None:
            self.fast.stop()
        if self._loop is not None:
            for fd in self._readers:
                self._loop.remove_reader(fd)
        self._readers.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(reason)

    def _add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.add_reader(fd, callback)
        self._readers.append(fd)

    def _register_bind(self, bind: UdpBind) -> None:
        for sock in bind.sockets():
            self._add_reader(sock.fileno(), functools.partial(self._on_udp_readable, sock))

    def _unregister_bind(self, bind: UdpBind) -> None:
        assert self._loop is not None
        for sock in bind.sockets():
            fd = sock.fileno()
            if fd in self._readers:
                self._loop.remove_reader(fd)
                self._readers.remove(fd)

    # ------------------------------------------------------------ inbound

    def _on_tun_readable(self) -> None:
        assert self.tun is not None
        packets: list[bytes] = []
        for _ in range(BATCH):
            try:
                packets.append(self.tun.read())
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    log.info("TUN %s is gone (%s); stopping", self.tun.name, errno.errorcode.get(exc.errno or 0))
                    self.stop("tun-gone")
                    return
                self.io_drops["tun-read-error"] += 1
                log.debug("TUN read error: %s", exc)
                break
        if packets:
            self.inject(packets)

    def inject(self, packets: list[bytes]) -> None:
        """Packets from the local side (TUN or the embedding caller)."""
        self._run(lambda now: self.device.tun_packets(packets, now))

    def _on_udp_readable(self, sock: socket.socket) -> None:
        try:
            batch = recv_batch(sock, BATCH)
        except OSError as exc:
            self.io_drops["udp-recv-error"] += 1
            log.debug("UDP receive error: %s", exc)
            return
        if batch:
            self._run(lambda now: self.device.datagrams_received(batch, now))

    def _on_native_batch(self, tx: BatchResult, rx: BatchResult) -> None:
        """What the native loops did since the last drain (``FastPath`` calls this on the loop thread)."""
        self.io_drops.update(tx.io_drops)
        self.io_drops.update(rx.io_drops)
        self._run(lambda now: self.device.batch_sent(tx, now) + self.device.batch_received(rx, now))

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._run(self.device.handle_timeout, after_timeout=True)

    def _run(self, step: Callable[[float], list[Action]], after_timeout: bool = False) -> None:
        try:
            actions = step(time.monotonic())
        except Exception:  # the engine must not take the daemon down
            self.io_drops["engine-error"] += 1
            log.exception("engine error")
            actions = []
        self.perform(actions)
        self.rearm(after_timeout)

    # ------------------------------------------------------------ outbound

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendDatagram):
                if not self.bind.send(action.data, action.endpoint):
                    self.io_drops["udp-send"] += 1
            elif isinstance(action, WriteTun):
                self._write_tun(action.packet)
            elif isinstance(action, Unreachable):
                self._write_unreachable(action.packet)

    def _write_unreachable(self, packet: bytes) -> None:
        """An ICMP unreachable into the TUN, at most ICMP_PER_SECOND (bursts of ICMP_BURST); none without a TUN."""
        if self.tun is None:
            return
        now = time.monotonic()
        self._icmp_tokens = min(ICMP_BURST, self._icmp_tokens + (now - self._icmp_refill) * ICMP_PER_SECOND)
        self._icmp_refill = now
        if self._icmp_tokens >= 1:
            self._icmp_tokens -= 1
            self._write_tun(packet)

    def _write_tun(self, packet: bytes) -> None:
        if self.tun is None:
            assert self._deliver is not None
            try:
                self._deliver(packet)
            except Exception:
                self.io_drops["deliver-error"] += 1
                log.exception("deliver callback failed")
            return
        try:
            self.tun.write(packet)
        except OSError as exc:  # never fatal: a deleted TUN is noticed by the read side
            self.io_drops[tun_write_drop(exc.errno)] += 1

    # ------------------------------------------------------------ timer

    def rearm(self, after_timeout: bool = False) -> None:
        """Keep one timer at ``next_deadline()`` (earlier deadlines replace it)."""
        if self._loop is None:
            return
        deadline = self.device.next_deadline()
        if deadline is None:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = deadline - time.monotonic()
        floor = MIN_TIMER_DELAY if after_timeout else 0.0
        self._timer = self._loop.call_later(max(delay, floor), self._on_timer)
        self._timer_at = deadline

    # ------------------------------------------------------------ configuration

    def configure(self, update: DeviceUpdate) -> None:
        """Apply a set transaction atomically; on ``ConfigError`` or ``OSError`` change nothing and re-raise."""
        new_bind = self._prepare_bind(update)
        old_mark = self.device.fwmark
        try:
            if new_bind is None and update.fwmark is not None and update.fwmark != old_mark:
                self.bind.set_mark(update.fwmark)
            actions = self.device.apply(update, time.monotonic())
        except (ConfigError, OSError):
            if new_bind is not None:
                new_bind.close()
            else:
                self._restore_mark(old_mark)
            raise
        if new_bind is not None:
            self._swap_bind(new_bind)
        self.device.listen_port = self.bind.port
        self.perform(actions)
        self.rearm()

    def _prepare_bind(self, update: DeviceUpdate) -> UdpBind | None:
        if update.listen_port is None or (update.listen_port == self.bind.port and update.listen_port != 0):
            return None
        mark = update.fwmark if update.fwmark is not None else self.device.fwmark
        try:
            return UdpBind.open(update.listen_port, mark)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind port {update.listen_port}: {exc.strerror}") from exc

    def _restore_mark(self, mark: int) -> None:
        try:
            self.bind.set_mark(mark)
        except OSError:
            pass

    def _swap_bind(self, new_bind: UdpBind) -> None:
        old = self.bind
        if self.fast is not None:
            self.fast.stop()
        if self._loop is not None:
            self._unregister_bind(old)
        old.close()
        self.bind = new_bind
        if self._loop is not None:
            if self.fast is not None:
                self.fast.start(self._loop, new_bind)
            else:
                self._register_bind(new_bind)
        log.info("listening on UDP port %d", new_bind.port)

    def set_link(self, running: bool) -> None:
        """The TUN link went up or down (wireguard-go's EventUp/EventDown)."""
        self.link_up = running
        if running:
            self._run(self.device.up)
        else:
            self.device.down(time.monotonic())
            self.rearm()

    def sync(self) -> None:
        """Bring the device's counters and endpoints up to date with the native plane (no-op when pure)."""
        if self.fast is not None:
            self.fast.flush()

    def set_mtu(self, mtu: int) -> None:
        self.device.mtu = mtu
