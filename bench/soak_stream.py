"""One end of a soak TCP stream (run inside a namespace by bench/soak.py).

    soak_stream.py recv HOST PORT OUT.json
    soak_stream.py send HOST PORT SECONDS SEED OUT.json

The sender writes a deterministic byte stream (a seeded 1 MiB block, rotated
differently for every 64 KiB chunk) for SECONDS, then closes its side and
waits for the receiver to close.  Both ends hash what they sent / received
(SHA-256), so the orchestrator can tell that every byte arrived unchanged
and in order.  The receiver also notes the gaps between successive reads:
the longest (and the five longest, with their CLOCK_MONOTONIC time, which
all namespaces share) are the stalls.  The result goes to OUT.json, also on
error.  Talks only to HOST:PORT, an address inside the soak's namespaces.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import socket
import sys
import time

CHUNK = 64 * 1024
STALL_LIMIT = 120.0
"""A read or write that waits longer than this ends the stream with an error."""


def receive(host: str, port: int, out: str) -> None:
    result: dict[str, object] = {"bytes": 0, "error": None}
    digest = hashlib.sha256()
    stalls: list[tuple[float, float]] = []  # min-heap of the five longest (gap, at)
    try:
        srv = socket.create_server((host, port))
        srv.settimeout(60)
        conn, _ = srv.accept()
        conn.settimeout(STALL_LIMIT)
        start = last = time.monotonic()
        result["start"] = start
        n = 0
        while True:
            data = conn.recv(1 << 18)
            now = time.monotonic()
            if not data:
                break
            gap = now - last
            last = now
            if len(stalls) < 5:
                heapq.heappush(stalls, (gap, now - gap))
            elif gap > stalls[0][0]:
                heapq.heapreplace(stalls, (gap, now - gap))
            digest.update(data)
            n += len(data)
            result["bytes"] = n
        result["end"] = last
        conn.close()
    except OSError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["sha256"] = digest.hexdigest()
    result["stalls"] = sorted(stalls, reverse=True)
    with open(out, "w") as f:
        json.dump(result, f)


def send(host: str, port: int, seconds: float, seed: int, out: str) -> None:
    result: dict[str, object] = {"bytes": 0, "error": None}
    digest = hashlib.sha256()
    block = random.Random(seed).randbytes(1 << 20)
    doubled = memoryview(block + block)
    try:
        deadline = time.monotonic() + 30
        while True:  # the receiver may not listen yet
            try:
                conn = socket.create_connection((host, port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.settimeout(STALL_LIMIT)
        end = time.monotonic() + seconds
        n = i = 0
        while time.monotonic() < end:
            off = (i * 104729) % len(block)
            chunk = doubled[off:off + CHUNK]
            conn.sendall(chunk)
            digest.update(chunk)
            n += CHUNK
            i += 1
            result["bytes"] = n
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):  # until the receiver has read everything and closed
            pass
        conn.close()
    except OSError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["sha256"] = digest.hexdigest()
    with open(out, "w") as f:
        json.dump(result, f)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "recv":
        receive(argv[1], int(argv[2]), argv[3])
        return 0
    if len(argv) == 6 and argv[0] == "send":
        send(argv[1], int(argv[2]), float(argv[3]), int(argv[4]), argv[5])
        return 0
    print("usage:\n" + "\n".join(__doc__.splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
