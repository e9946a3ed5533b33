"""WGPY_NATIVE=0 (or a missing/stale build) leaves a working pure path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PURE_SESSION = r"""
import sys
sys.path[:0] = ["tests"]
from wgpy import _native, dataplane
from wgpy.io import fastpath
assert not _native.available(), "native should be off"
assert "WGPY_NATIVE=0" in _native.load_error()
assert dataplane.create() is None and not fastpath.enabled()
from wgsupport import DevicePair
from wgpy.keypair import Keypair
p = DevicePair()
p.send_ip(p.a, b"one"); p.deliver(); p.send_ip(p.b, b"two", v6=True); p.deliver()
assert [x[-3:] for x in p.b.tun] == [b"one"] and [x[-3:] for x in p.a.tun] == [b"two"]
kp = p.peer_of(p.a).keypairs.current
assert type(kp) is Keypair and p.a.device.dataplane is None
print("pure ok")
"""

STALE = r"""
import wgpy._version
wgpy._version.__version__ = "0.0.0-stale"
from wgpy import _native
assert not _native.available()
assert "stale" in _native.load_error(), _native.load_error()
print("stale refused")
"""


def _run(code: str, **env: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_wgpy_native_0_runs_the_engine_purely() -> None:
    assert "pure ok" in _run(PURE_SESSION, WGPY_NATIVE="0")


def test_stale_build_is_refused() -> None:
    assert "stale refused" in _run(STALE)
