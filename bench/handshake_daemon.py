"""Handshake responses per CPU-second of a responder daemon (wgpy or wireguard-go), over UDP.

Contract: ``daemon_handshake_rate`` starts a fresh daemon in namespace B,
configures it over UAPI with a private key, a listen port and N peers (the
initiators' keys, one /32 each), brings the link up, and has a sender in
namespace A (this file run as a script) replay N pre-generated initiations
(made by wgpy initiator devices, one per peer, valid mac1) with at most
``WINDOW`` unanswered, below both implementations' under-load threshold, so
every initiation should get a handshake response.  The figure is responses
received / CPU seconds the daemon process spent (/proc/<pid>/stat) while the
sender ran.  The sender's own loop is bounded in time; traffic stays between
the bench namespaces.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

WINDOW = 32
PORT = 51003


def daemon_handshake_rate(under: Any, kind: str, n: int, timeout: float = 120) -> dict[str, Any]:
    from .common import PYTHON, proc_cpu
    from .handshakes import Clock, make_initiations
    from .peer_memory import uapi_set
    from .tunnel import UNDER, start_daemon

    from wgpy.keys import PrivateKey
    import os

    rkey = PrivateKey.generate(os.urandom)
    made = make_initiations(n, rkey.public_key(), Clock(), (UNDER[1], PORT))
    msgs = under.logdir / f"initiations-{kind}.hex"
    msgs.write_text("".join(m.hex() + "\n" for _, _, _, m in made))
    d = start_daemon(kind, under.b, under.ifname("h"), under.logdir)
    try:
        body = f"private_key={rkey.to_hex()}\nlisten_port={PORT}\n" + "".join(
            f"public_key={pub.to_hex()}\nallowed_ip=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\n"
            for i, (_, _, pub, _) in enumerate(made))
        ans = uapi_set(d.sock, body)
        if "errno=0" not in ans:
            raise RuntimeError(f"UAPI set: {ans.strip()!r}")
        under.b.run("ip", "link", "set", d.ifname, "up")
        time.sleep(0.5)
        cpu0 = proc_cpu(d.pid)
        res = under.a.run(PYTHON, str(Path(__file__).resolve()), UNDER[1], str(PORT), str(msgs),
                          str(WINDOW), str(timeout), check=False, timeout=timeout + 30)
        cpu = proc_cpu(d.pid) - cpu0
        if not d.alive():
            raise RuntimeError(f"{kind} died: {d.log_tail()}")
        if res.returncode != 0:
            raise RuntimeError(f"sender failed: {res.stderr.strip()[-300:]}")
        out: dict[str, Any] = json.loads(res.stdout)
        out["daemon_cpu_s"] = cpu
        out["per_cpu_s"] = out["responses"] / cpu if cpu > 0 else None
        out["per_wall_s"] = out["responses"] / out["wall_s"] if out["wall_s"] > 0 else None
        if out["responses"] == 0:
            raise RuntimeError(f"no handshake responses ({out})")
        return out
    finally:
        d.stop()


def _sender(host: str, port: int, path: str, window: int, timeout: float) -> dict[str, Any]:
    msgs = [bytes.fromhex(line) for line in Path(path).read_text().split()]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect((host, port))
    s.setblocking(False)
    sent = responses = cookies = other = lost = 0
    outstanding = 0
    t0 = time.monotonic()
    deadline = t0 + timeout
    last_rx = t0
    last_resp = t0
    while time.monotonic() < deadline:
        while outstanding < window and sent < len(msgs):
            try:
                s.send(msgs[sent])
            except BlockingIOError:
                break
            sent += 1
            outstanding += 1
        if sent == len(msgs) and outstanding == 0:
            break
        ready, _, _ = select.select([s], [], [], 0.2)
        now = time.monotonic()
        if not ready:
            if now - last_rx > 1.0:  # give up on what is still outstanding
                lost += outstanding
                outstanding = 0
                last_rx = now
                if sent == len(msgs):
                    break
            continue
        for _ in range(256):
            try:
                data = s.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                break
            last_rx = time.monotonic()
            if data[:1] == b"\x02":
                responses += 1
                last_resp = last_rx
            elif data[:1] == b"\x03":
                cookies += 1
            else:
                other += 1
                continue
            outstanding = max(0, outstanding - 1)
    return {"initiations": len(msgs), "sent": sent, "responses": responses, "cookie_replies": cookies,
            "other": other, "unanswered": lost + outstanding, "wall_s": last_resp - t0, "window": window}


if __name__ == "__main__":
    host, port, path, window, timeout = sys.argv[1:6]
    print(json.dumps(_sender(host, int(port), path, int(window), float(timeout))))
