"""The C data plane under AddressSanitizer + UndefinedBehaviorSanitizer, and ThreadSanitizer.

Each test compiles a second copy of the cffi module with the sanitizer into a
temporary tree (a copy of ``wgpy`` and of the native tests, so nothing in
the worktree changes), then runs native tests against it in a subprocess
with the sanitizer's runtime preloaded (Python itself is not instrumented):

- ASan+UBSan: the differential tests (batches, keypairs, TSO split, GRO on
  TUN write, with bad checksums) and the I/O-loop tests (hostile virtio-net
  headers, GSO-coalesced datagrams, forged transport messages, keypair and
  peer churn from another thread).  ``PYTHONMALLOC=malloc`` so buffers
  Python hands to C get redzones too.
- TSan: the I/O-loop tests (the churn test above all: control calls racing both loops).

Any sanitizer report fails the test (the runtimes halt on the first error,
and the output is searched for reports as well).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer|ERROR: LeakSanitizer|"
                    r"SUMMARY: \w+Sanitizer")
ASAN_TESTS = ["test_batch_diff.py", "test_keypair_diff.py", "test_offload_diff.py", "test_loops.py"]
TSAN_TESTS = ["test_loops.py"]


def _runtime(name: str) -> str:
    """The sanitizer runtime gcc links (e.g. libasan.so): preloaded before Python."""
    path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        pytest.fail(f"{name} not found: install the gcc sanitizer runtimes (tests/install.sh)")
    return os.path.realpath(path)


def _tree(tmp: Path) -> Path:
    """A copy of the package (without compiled modules) and of the tests the subprocess runs."""
    skip = shutil.ignore_patterns("*.so", "__pycache__", "*.pyc")
    shutil.copytree(ROOT / "wgpy", tmp / "wgpy", ignore=skip)
    (tmp / "tests").mkdir()
    shutil.copytree(ROOT / "tests" / "native", tmp / "tests" / "native", ignore=skip)
    for name in ("conftest.py", "wgsupport.py"):
        shutil.copy2(ROOT / "tests" / name, tmp / "tests" / name)
    shutil.copy2(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _build(tree: Path, flags: tuple[str, ...], runtime: str) -> None:
    spec = importlib.util.spec_from_file_location("wgpy_native_build", ROOT / "wgpy" / "_native" / "_build.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    cwd = os.getcwd()
    try:
        built = builder.build_into(str(tree), cflags=("-O1", "-g", "-fno-omit-frame-pointer", *flags),
                                   ldflags=flags)
    finally:
        os.chdir(cwd)  # distutils may leave the cwd elsewhere
    linked = subprocess.run(["ldd", built], capture_output=True, text=True, check=True).stdout
    assert runtime in linked, linked  # the build really is instrumented


def _run(tree: Path, preload: str, env: dict[str, str], tests: list[str]) -> None:
    """Run ``tests`` against the build in ``tree``; reports go to ``tree``/sanitizer.<pid> files
    (pytest's own output capture would swallow them when the runtime halts the process)."""
    logs = tree / "sanitizer"
    env = {k: f"{v}:log_path={logs}" if k.endswith("SAN_OPTIONS") else v for k, v in env.items()}
    full = dict(os.environ, PYTHONPATH=str(tree), LD_PRELOAD=preload, WGPY_NATIVE="1", **env)
    probe = subprocess.run([PYTHON, "-c", "import wgpy._native as n; assert n.available(), n.load_error(); "
                            "print(n.lib.wgdp_version and n.__file__)"], cwd=tree, env=full,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.startswith(str(tree)), probe.stdout + probe.stderr
    res = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                          *[f"tests/native/{t}" for t in tests]],
                         cwd=tree, env=full, capture_output=True, text=True, timeout=900)
    reports = "".join(p.read_text(errors="replace") for p in sorted(tree.glob("sanitizer.*")))
    output = res.stdout + res.stderr
    assert not reports and REPORT.search(output) is None, reports[:20000] or output[-12000:]
    assert res.returncode == 0, output[-12000:]


def test_native_tests_under_asan_and_ubsan(tmp_path: Path) -> None:
    flags = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all")
    tree = _tree(tmp_path)
    _build(tree, flags, "libasan.so")
    _run(tree, _runtime("libasan.so"), {
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:strict_string_checks=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
        "PYTHONMALLOC": "malloc",
    }, ASAN_TESTS)


def test_loops_under_tsan(tmp_path: Path) -> None:
    flags = ("-fsanitize=thread",)
    tree = _tree(tmp_path)
    _build(tree, flags, "libtsan.so")
    _run(tree, _runtime("libtsan.so"), {
        "TSAN_OPTIONS": "halt_on_error=1:exitcode=88:report_signal_unsafe=0",
    }, TSAN_TESTS)
