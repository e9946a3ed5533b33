"""A small rtnetlink client: the links, addresses, rules and routes the agent reads and writes.

Contract: ``Rtnl(netns=None)`` opens one blocking ``NETLINK_ROUTE`` socket (with ``netns``, inside the
named network namespace ``/run/netns/NAME``: the socket is created by a short-lived thread that entered
it, so the process itself never changes namespace) and closes it on ``close()`` / ``with``.
``dump(kind, family)`` returns every object of a kind (``LINK``, ``ADDR``, ``RULE``, ``ROUTE``) as
``Msg``: the fixed header's fields as a tuple and the attributes as ``{type: payload bytes}`` (nested
ones decoded with ``attrs()``).  ``request(type, header, attrs, flags)`` sends one change and waits for
the kernel's acknowledgement; a refusal raises ``OSError`` with the kernel's errno.  Encoding helpers
(``attr``, ``u32``, ``ip_attr``) build attributes.  Only the message layouts of linux/rtnetlink.h,
linux/if_addr.h and linux/fib_rules.h; no policy, no state beyond the socket and the sequence number.

Why not pyroute2 (the library the agent used before): importing it costs ~0.13 s of CPU (its package
imports every family it supports) and every synchronous call runs an asyncio loop of its own, ~1-2 ms a
call; a mesh of 50 agents starting on 2 cores paid that 50 times.  Here a dump is one send and a few
``recv`` calls (wgpy's ``wgpy.io.tun_linux`` reads links the same way).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

# message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
# attributes
IFLA_IFNAME, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_CARRIER = 3, 16, 18, 33
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_METRICS, RTA_TABLE = 1, 4, 6, 8, 15
RTAX_MTU = 2
FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_FWMASK = 6, 10, 15, 16
IFF_UP = 0x1
FR_ACT_TO_TBL = 1
RTN_UNICAST = 1
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
"""IFLA_OPERSTATE values (RFC 2863 names, as ``ip link`` prints them)."""

NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")      # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")       # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")       # family, dst_len, src_len, tos, table, protocol, scope, type, flags
FIB_RULE_HDR = RTMSG                      # family, dst_len, src_len, tos, table, res1, res2, action, flags
RTATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_NLA_TYPE_MASK = 0x3FFF
CLONE_NEWNET = 0x40000000

LINK, ADDR, RULE, ROUTE = "link", "addr", "rule", "route"
_DUMPS = {LINK: (RTM_GETLINK, IFINFOMSG), ADDR: (RTM_GETADDR, IFADDRMSG), RULE: (RTM_GETRULE, FIB_RULE_HDR),
          ROUTE: (RTM_GETROUTE, RTMSG)}
_REPLIES = {RTM_GETLINK: RTM_NEWLINK, RTM_GETADDR: RTM_NEWADDR, RTM_GETRULE: RTM_NEWRULE,
            RTM_GETROUTE: RTM_NEWROUTE}


@dataclass(frozen=True, slots=True)
class Msg:
    """One object of a dump: its fixed header and its attributes."""

    header: tuple[int, ...]
    attrs: dict[int, bytes] = field(default_factory=dict)

    def u32(self, kind: int) -> int | None:
        raw = self.attrs.get(kind)
        return _U32.unpack_from(raw)[0] if raw is not None and len(raw) >= 4 else None

    def text(self, kind: int) -> str | None:
        raw = self.attrs.get(kind)
        return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None


def attrs(data: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in ``data[start:end]`` (the first of each type; the nested flag ignored)."""
    out: dict[int, bytes] = {}
    end = len(data) if end is None else end
    while start + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, start)
        if length < RTATTR.size or start + length > end:
            break
        out.setdefault(kind & _NLA_TYPE_MASK, bytes(data[start + RTATTR.size:start + length]))
        start += (length + 3) & ~3
    return out


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    raw = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return raw + bytes(-len(raw) % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def ip_attr(kind: int, address: str) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return attr(kind, socket.inet_pton(family, address))


def ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _socket_in(netns: str) -> socket.socket:
    """A NETLINK_ROUTE socket of network namespace ``netns``, made by a thread that entered it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      socket.NETLINK_ROUTE))
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=make, name=f"rtnl-{netns}")
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class Rtnl:
    """One rtnetlink socket (see the module contract).  Not thread-safe."""

    def __init__(self, netns: str | None = None, timeout: float = 5.0) -> None:
        self.sock = _socket_in(netns) if netns else socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.sock.settimeout(timeout)
        self.sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _send(self, mtype: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self.sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), mtype, flags, self._seq, 0) + body)
        return self._seq

    def _replies(self, seq: int) -> Iterable[tuple[int, bytes]]:
        """(type, body) of each message answering ``seq`` until the dump's end or the acknowledgement;
        a kernel error raises ``OSError``."""
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + NLMSGHDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = NLMSGHDR.unpack_from(data, off)
                if length < NLMSGHDR.size or off + length > len(data):
                    break
                body = data[off + NLMSGHDR.size:off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue  # an answer to an earlier request that timed out
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                    if err:
                        raise OSError(err, os.strerror(err))
                    return
                yield mtype, body

    def dump(self, kind: str, family: int = socket.AF_UNSPEC) -> list[Msg]:
        """Every object of ``kind`` (``LINK``, ``ADDR``, ``RULE``, ``ROUTE``) of ``family``."""
        mtype, header = _DUMPS[kind]
        request = bytes([family]) + bytes(header.size - 1)
        seq = self._send(mtype, NLM_F_REQUEST | NLM_F_DUMP, request)
        out = []
        for rtype, body in self._replies(seq):
            if rtype == _REPLIES[mtype] and len(body) >= header.size:
                out.append(Msg(header.unpack_from(body), attrs(body, header.size)))
        return out

    def request(self, mtype: int, header: bytes, attributes: Iterable[bytes] = (), flags: int = 0) -> None:
        """One change (``flags`` beside REQUEST|ACK, e.g. CREATE|EXCL), acknowledged by the kernel."""
        seq = self._send(mtype, NLM_F_REQUEST | NLM_F_ACK | flags, header + b"".join(attributes))
        for _ in self._replies(seq):
            pass
