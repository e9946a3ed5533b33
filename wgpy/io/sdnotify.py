"""systemd service notification: the ``NOTIFY_SOCKET`` datagram protocol (sd_notify(3)).

Contract: ``notify(fields)`` sends one datagram of ``KEY=VALUE`` lines to the
unix datagram socket named by ``$NOTIFY_SOCKET`` (a file path, or ``@name``
for a socket in the abstract namespace) and returns True when it was sent.
Without ``$NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``)
it does nothing and returns False;
a socket that cannot be reached is logged at debug and returns False.  It
never raises: readiness is a courtesy to the service manager, never a reason
to stop serving.  ``ready()`` sends ``READY=1`` (and ``MAINPID=`` when the
caller is not the process systemd started, e.g. a daemonized child).  No
dependency on libsystemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("wgpy.sdnotify")

ENV_NOTIFY_SOCKET = "NOTIFY_SOCKET"


def _address(name: str) -> str | bytes | None:
    if name.startswith("@") and len(name) > 1:
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock: and relative names are not ours to guess at


def notify(fields: Mapping[str, str]) -> bool:
    """Send ``fields`` as one notification; True when the datagram went out."""
    name = os.environ.get(ENV_NOTIFY_SOCKET, "")
    address = _address(name) if name else None
    if address is None:
        if name:
            log.debug("ignoring NOTIFY_SOCKET=%r: not a unix socket address", name)
        return False
    message = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.debug("service notification to %s failed: %s", name, exc)
        return False
    return True


def ready(status: str | None = None, *, main_pid: bool = False) -> bool:
    """``READY=1``: the service serves.  ``main_pid`` names this process as the service's main one."""
    fields = {"READY": "1"}
    if status:
        fields["STATUS"] = status
    if main_pid:
        fields["MAINPID"] = str(os.getpid())
    return notify(fields)

