"""Linux TUN device: ``IFF_TUN|IFF_NO_PI`` (and ``IFF_VNET_HDR`` when asked).

Contract: owns the TUN file descriptor.  python-pytun (``pytun.TunTapDevice``)
creates and names the device and sets its first MTU; what pytun lacks is done
here by hand: ``TUNSETOFFLOAD``, adopting an inherited fd (``WG_TUN_FD``,
``TUNGETIFF``), reading the MTU and link flags by name (also for an adopted
fd), and the rtnetlink link events (``LinkWatcher``).  It does not bring the
link up: like wireguard-go, that is left to ``ip``/``wg-quick``.  Reads and
writes are non-blocking single packets; the caller batches.  With
``offload=True`` (the caller decides: ``wgpy.interface`` asks for it when the
native data plane will serve the device) the TUN is opened with
``IFF_VNET_HDR`` and TSO/checksum offload; ``read``/``write`` then strip/add
the virtio-net header themselves (splitting a TSO read with
``wgpy.offload``).  With ``queues=N`` > 1 (the caller decides: the native data
plane asks for one queue per CPU, ``wgpy.io.fastpath.tun_queues``) the device
is multi-queue (``IFF_MULTI_QUEUE``): ``queue_fds`` holds N fds, the kernel
spreads flows over them, and ``fd`` (queue 0) is the one Python reads and
writes; with one queue the device is opened exactly as without the option.
The fds are close-on-exec.  The interface disappears when
the last fd is closed (the device is not persistent), which is how the daemon
removes its interface on exit.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import socket
import struct

import pytun

from ..errors import DropReason
from ..offload import tso_split

TUNGETIFF = 0x800454D2
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
VNET_HDR_LEN = 10
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFNAMSIZ = 16

READ_SIZE = 65536
GONE_ERRNOS = frozenset({errno.EBADFD, errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF})
"""Errors a TUN read returns once the interface has been deleted."""


def tun_write_drop(code: int | None) -> str:
    """The drop counter for a failed TUN write (the native loop's twin in ``wgdp_io.c``).

    EIO: the link is down (``ip link set down``, or before wg-quick brings it
    up); ENOBUFS/EAGAIN: the queue is full; anything else: ``tun-write``.
    """
    if code == errno.EIO:
        return DropReason.TUN_DOWN.value
    if code in (errno.ENOBUFS, errno.EAGAIN):
        return DropReason.TUN_QUEUE_FULL.value
    return "tun-write"


class TunDevice:
    """An open TUN interface (fd non-blocking, packets without a PI header)."""

    def __init__(self, fd: int, name: str, vnet_hdr: bool = False, owner: pytun.TunTapDevice | None = None,
                 extra_queues: list[pytun.TunTapDevice] | None = None) -> None:
        self.fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr
        """Reads and writes carry a virtio-net header (IFF_VNET_HDR)."""
        self._owner = owner
        """The pytun device that created ``fd`` (it closes it), or None for an adopted fd."""
        self._extra = list(extra_queues or ())
        """The queues beyond the first of a multi-queue device (each a pytun device owning its fd)."""
        self._pending: collections.deque[bytes] = collections.deque()
        for qfd in self.queue_fds:
            os.set_blocking(qfd, False)
            os.set_inheritable(qfd, False)

    @property
    def queue_fds(self) -> list[int]:
        """One fd per TUN queue, queue 0 (``fd``) first; one entry unless the device is multi-queue."""
        return [self.fd, *(q.fileno() for q in self._extra)] if self.fd >= 0 else []

    @classmethod
    def create(cls, name: str, mtu: int | None = None, offload: bool = False, queues: int = 1) -> TunDevice:
        """Create (or attach to) TUN interface ``name``; set its MTU if given.

        ``offload`` opens it with IFF_VNET_HDR and asks for checksum + TSO
        offload (an older kernel that refuses them still gets the headers).
        ``queues`` > 1 makes it multi-queue with that many queues (every queue
        is attached with the same flags, as the kernel requires).
        """
        check_ifname(name)
        if queues < 1:
            raise ValueError(f"a TUN needs at least one queue, not {queues}")
        flags = pytun.IFF_TUN | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if offload else 0)
        if queues > 1 and (attached_queues(name) or 0) > 0:
            # a live multi-queue TUN would take one more queue from us and share its traffic:
            # refuse as the kernel refuses a second fd on a single-queue one
            raise OSError(errno.EBUSY, f"{name} is in use")
        if queues > 1:
            try:
                owner = pytun.TunTapDevice(name=name, flags=flags | pytun.IFF_MULTI_QUEUE)
                flags |= pytun.IFF_MULTI_QUEUE
            except pytun.Error as exc:
                if "Invalid argument" not in str(exc):
                    raise
                queues = 1  # an existing single-queue device of that name: attach to it as before
                owner = pytun.TunTapDevice(name=name, flags=flags)
        else:
            owner = pytun.TunTapDevice(name=name, flags=flags)
        extra: list[pytun.TunTapDevice] = []
        try:
            if offload:
                try:
                    fcntl.ioctl(owner.fileno(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
                except OSError:
                    pass  # headers without offloads: every read is a plain packet
            if mtu is not None:
                owner.mtu = mtu
            for _ in range(queues - 1):
                extra.append(pytun.TunTapDevice(name=owner.name, flags=flags))
            return cls(owner.fileno(), owner.name, vnet_hdr=offload, owner=owner, extra_queues=extra)
        except BaseException:
            for q in extra:
                q.close()
            owner.close()
            raise

    @classmethod
    def from_fd(cls, fd: int) -> TunDevice:
        """Adopt an already configured TUN fd (``WG_TUN_FD``)."""
        res = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
        name = res[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        flags = struct.unpack_from("H", res, IFNAMSIZ)[0]
        return cls(fd, name, vnet_hdr=bool(flags & pytun.IFF_VNET_HDR))

    def read(self) -> bytes:
        """One packet; raises BlockingIOError when none is ready."""
        if not self.vnet_hdr:
            return os.read(self.fd, READ_SIZE)
        while not self._pending:
            self._pending.extend(tso_split(os.read(self.fd, READ_SIZE + VNET_HDR_LEN)) or ())
        return self._pending.popleft()

    def write(self, packet: bytes) -> None:
        os.write(self.fd, bytes(VNET_HDR_LEN) + packet if self.vnet_hdr else packet)

    def mtu(self) -> int:
        res = _ifreq_ioctl(SIOCGIFMTU, struct.pack("16s24x", self.name.encode()))
        return int(struct.unpack_from("i", res, IFNAMSIZ)[0])

    def flags(self) -> int:
        res = _ifreq_ioctl(SIOCGIFFLAGS, struct.pack("16s24x", self.name.encode()))
        return int(struct.unpack_from("H", res, IFNAMSIZ)[0])

    def running(self) -> bool:
        """The link is IFF_UP and IFF_RUNNING (what ``LinkEvent.running`` reports)."""
        return is_running(self.flags())

    def index(self) -> int:
        return socket.if_nametoindex(self.name)

    def close(self) -> None:
        if self.fd >= 0:
            for q in self._extra:
                q.close()
            self._extra = []
            if self._owner is not None:
                self._owner.close()
            else:
                os.close(self.fd)
            self.fd = -1


def check_ifname(name: str) -> None:
    """Reject names Linux would refuse (empty, too long, '/', whitespace)."""
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or any(c in name for c in "/: \t\n") or name in (".", ".."):
        raise ValueError(f"invalid interface name {name!r}")


def is_running(flags: int) -> bool:
    """Interface flags say IFF_UP and IFF_RUNNING."""
    return flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


def _ifreq_ioctl(request: int, ifr: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return fcntl.ioctl(sock.fileno(), request, ifr)


RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
NLM_F_REQUEST = 1
IFLA_MTU = 4
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_TUN_NUM_QUEUES = 8
_NLA_TYPE_MASK = 0x3FFF
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")


class LinkEvent:
    """One RTM_NEWLINK/RTM_DELLINK for an interface index."""

    __slots__ = ("index", "deleted", "flags", "mtu")

    def __init__(self, index: int, deleted: bool, flags: int, mtu: int | None) -> None:
        self.index = index
        self.deleted = deleted
        self.flags = flags
        self.mtu = mtu

    @property
    def running(self) -> bool:
        return is_running(self.flags)


class LinkWatcher:
    """A non-blocking rtnetlink socket subscribed to link events."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_events(self, limit: int = 64) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        for _ in range(limit):
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # overrun: events lost, caller re-polls flags
                    events.append(LinkEvent(0, False, 0, None))
                    continue
                raise
            events.extend(parse_link_messages(data))
        return events

    def close(self) -> None:
        self.sock.close()


def parse_link_messages(data: bytes) -> list[LinkEvent]:
    """Decode the link messages of one netlink read (other types skipped)."""
    events: list[LinkEvent] = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            break
        body = off + _NLMSGHDR.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            _fam, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, body)
            mtu = _find_u32_attr(data, body + _IFINFOMSG.size, off + length, IFLA_MTU)
            events.append(LinkEvent(index, mtype == RTM_DELLINK, flags, mtu))
        off += (length + 3) & ~3
    return events


def _find_attr(data: bytes, start: int, end: int, wanted: int) -> tuple[int, int] | None:
    """The payload range of the first attribute of type ``wanted`` (nested flag ignored) in [start, end)."""
    while start + _RTATTR.size <= end:
        alen, atype = _RTATTR.unpack_from(data, start)
        if alen < _RTATTR.size or start + alen > end:
            return None
        if atype & _NLA_TYPE_MASK == wanted:
            return start + _RTATTR.size, start + alen
        start += (alen + 3) & ~3
    return None


def _find_u32_attr(data: bytes, start: int, end: int, wanted: int) -> int | None:
    found = _find_attr(data, start, end, wanted)
    if found is None or found[1] - found[0] < 4:
        return None
    return int(struct.unpack_from("=I", data, found[0])[0])


def attached_queues(name: str) -> int | None:
    """How many fds have TUN ``name`` of this network namespace attached (rtnetlink
    ``IFLA_TUN_NUM_QUEUES``); None when there is no such link, it is no TUN, or the
    kernel does not say (it counts multi-queue TUNs only: a single-queue one refuses a
    second fd by itself, EBUSY).  A multi-queue TUN takes another queue from anyone, so this is
    how ``TunDevice.create`` tells a live device from a free one."""
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        return None
    request = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), RTM_GETLINK, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)
        sock.send(header + request)
        data = sock.recv(65536)
    if len(data) < _NLMSGHDR.size + _IFINFOMSG.size:
        return None
    length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, 0)
    if mtype != RTM_NEWLINK or length > len(data):
        return None
    info = _find_attr(data, _NLMSGHDR.size + _IFINFOMSG.size, length, IFLA_LINKINFO)
    kind = _find_attr(data, info[0], info[1], IFLA_INFO_KIND) if info else None
    if info is None or kind is None or data[kind[0]:kind[1]].rstrip(b"\0") != b"tun":
        return None
    tun = _find_attr(data, info[0], info[1], IFLA_INFO_DATA)
    return _find_u32_attr(data, tun[0], tun[1], IFLA_TUN_NUM_QUEUES) if tun else None
