"""Root-only unix stream sockets with stale-socket takeover.

Contract: ``listen_private(path)`` creates the parent directory (0755) if
needed, refuses with ``SocketInUse`` when something answers on ``path``,
replaces a stale socket file, and binds under umask 077 so the socket is
never reachable by other users, even for an instant.  Used by the UAPI
server and by the kubespan agent's resource API.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat


class SocketInUse(Exception):
    """Another process is serving on this socket path."""


def is_live(path: str) -> bool:
    """True when ``path`` is a unix socket something accepts connections on."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
    except FileNotFoundError:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_private(sock: socket.socket, path: str) -> None:
    """Bind ``sock`` to ``path`` with umask 077 (owner-only from creation)."""
    old = os.umask(0o077)
    try:
        sock.bind(path)
    finally:
        os.umask(old)


def listen_private(path: str, backlog: int = 64) -> socket.socket:
    """A listening, owner-only socket at ``path`` (see the module contract)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            bind_private(sock, path)
        except OSError:
            if is_live(path):
                raise SocketInUse(f"socket {path} is in use") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            bind_private(sock, path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
