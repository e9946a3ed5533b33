"""The UDP sockets of one device: IPv4 and IPv6 bound to the same port.

Contract: ``UdpBind.open(port, fwmark)`` binds a non-blocking IPv4 socket and
an ``IPV6_V6ONLY`` IPv6 socket on one port (0 picks a random port that both
families get), with 7 MB buffers (the FORCE variants when privileged) and
``SO_MARK`` when a fwmark is set.  A host without IPv6 gets an IPv4-only bind.
``recv_batch`` drains a socket up to a bound; ``send`` picks the socket by the
endpoint's family and never raises for a transient error (the caller counts
the ``False``).  Binding failures raise ``OSError`` (EADDRINUSE for a port in
use) so the runner can refuse a ``listen_port`` before applying it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from ..config import Endpoint

SOCKET_BUFFER = 7 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_MARK = getattr(socket, "SO_MARK", 36)
RECV_SIZE = 65536
BIND_RETRIES = 100


class UdpBind:
    """An open pair of sockets (v6 may be None) on ``port``."""

    def __init__(self, v4: socket.socket, v6: socket.socket | None, port: int) -> None:
        self.v4 = v4
        self.v6 = v6
        self.port = port

    @classmethod
    def open(cls, port: int, fwmark: int = 0) -> UdpBind:
        """Bind both families on ``port`` (0 = random, retried until both fit)."""
        last: OSError | None = None
        for _ in range(BIND_RETRIES if port == 0 else 1):
            v4 = _make_socket(socket.AF_INET, fwmark)
            try:
                v4.bind(("0.0.0.0", port))
            except OSError:
                v4.close()
                raise
            actual = int(v4.getsockname()[1])
            try:
                v6 = _open_v6(actual, fwmark)
            except OSError as exc:
                v4.close()
                last = exc
                if exc.errno == errno.EADDRINUSE and port == 0:
                    continue
                raise
            return cls(v4, v6, actual)
        assert last is not None
        raise last

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.v4, self.v6) if s is not None]

    def set_mark(self, fwmark: int) -> None:
        for sock in self.sockets():
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)

    def send(self, data: bytes, endpoint: Endpoint) -> bool:
        """Send one datagram; False if it was dropped (no socket, EAGAIN, unreachable...)."""
        host, port = endpoint
        sock = self.v6 if ":" in host else self.v4
        if sock is None:
            return False
        try:
            sock.sendto(data, (host, port))
        except OSError:
            return False
        return True

    def close(self) -> None:
        for sock in self.sockets():
            sock.close()


def recv_batch(sock: socket.socket, limit: int) -> list[tuple[bytes, Endpoint]]:
    """Read up to ``limit`` datagrams without blocking; sources normalised."""
    batch: list[tuple[bytes, Endpoint]] = []
    for _ in range(limit):
        try:
            data, addr = sock.recvfrom(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EMSGSIZE):
                continue  # an ICMP error queued on the socket; not ours to act on
            raise
        batch.append((data, normalize_source(addr[0], addr[1])))
    return batch


def normalize_source(host: str, port: int) -> Endpoint:
    """Drop an IPv6 scope and turn v4-mapped IPv6 into plain IPv4."""
    if "%" in host:
        host = host.split("%", 1)[0]
    if host.startswith("::ffff:"):
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
        if mapped is not None:
            host = str(mapped)
    return (host, int(port))


def _make_socket(family: socket.AddressFamily, fwmark: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _set_buffers(sock)
        if fwmark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
    except BaseException:
        sock.close()
        raise
    return sock


def _set_buffers(sock: socket.socket) -> None:
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


def _open_v6(port: int, fwmark: int) -> socket.socket | None:
    if not socket.has_ipv6:
        return None
    try:
        sock = _make_socket(socket.AF_INET6, fwmark)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return None
        raise
    try:
        sock.bind(("::", port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return None  # IPv6 disabled on this host
        raise
    return sock
