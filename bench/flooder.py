"""Run bench/flooder.c (compiled here with gcc, once per build directory) against a handshake port.

Contract: ``build(dirpath)`` compiles the flooder and returns the binary's path;
``valid_mac1_messages(path, public, n)`` writes ``n`` initiations with random
bodies and a valid mac1 for ``public`` (mac2 zero: they need a cookie under
load); ``Flood`` starts the flooder through a caller-given argv prefix (e.g.
``ip netns exec NS``), and ``stop()`` ends it and returns its report
(``sent``, ``seconds``, ``rate``, ``errors``).  Each flood is bounded by its
``seconds``; ``stop`` kills it if it does not end by itself.  IPv4 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Sequence

from wgpy.cookie import CookieGenerator
from wgpy.keys import PublicKey

SOURCE = Path(__file__).resolve().parent / "flooder.c"
RATE = 150_000
"""Default pace (datagrams/s): above the 100,000/s the tests ask for, so a machine that can reach it does."""


def build(dirpath: Path) -> Path:
    """Compile the flooder into ``dirpath`` (gcc -O2); returns the binary."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("the flooder needs gcc")
    out = Path(dirpath) / "flooder"
    subprocess.run([gcc, "-O2", "-Wall", "-o", str(out), str(SOURCE)], check=True, capture_output=True, timeout=120)
    return out


def valid_mac1_messages(path: Path, public: PublicKey, n: int = 1024) -> Path:
    """``n`` initiations (random bodies) whose mac1 is valid for ``public``."""
    gen = CookieGenerator(public)
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(gen.add_macs(b"\x01\0\0\0" + os.urandom(144), 0.0))
    return Path(path)


class Flood:
    """One flooder process: ``prefix + [binary, dst, port, seconds, rate, msgfile, *sources]``."""

    def __init__(self, binary: Path, prefix: Sequence[str], dst: str, port: int, seconds: float,
                 messages: Path | None = None, sources: Sequence[str] = (), rate: int = RATE) -> None:
        argv = [*prefix, str(binary), dst, str(port), str(seconds), str(rate),
                str(messages) if messages is not None else "-", *sources]
        self.seconds = seconds
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(self) -> dict[str, float]:
        """End the flood (SIGTERM if it still runs) and return its report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
        lines = out.decode(errors="replace").strip().splitlines()
        if not lines:
            raise RuntimeError(f"flooder gave no report: {err.decode(errors='replace')[-500:]}")
        report: dict[str, float] = json.loads(lines[-1])
        return report
