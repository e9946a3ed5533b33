"""Packaging: the licence, a stable-ABI wheel with the native module inside, an sdist that builds.

The builds are real: ``pip wheel`` on the checkout, ``python -m build --sdist``
and then ``pip wheel`` on that sdist, each with build isolation (the
``[build-system]`` requirements are installed into a fresh environment the way
an installer would), then the wheel's native module is imported from the
unpacked wheel by a fresh interpreter.  They take a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = re.search(r'^__version__\s*=\s*"([^"]+)"', (REPO / "wgpy" / "_version.py").read_text(), re.M)
NATIVE = "wgpy/_native/_wgpy_native.abi3.so"

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res.stdout


def _version() -> str:
    assert VERSION is not None
    return VERSION.group(1)


def _check_wheel(wheel_dir: Path, tmp: Path) -> None:
    wheels = list(wheel_dir.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert re.fullmatch(rf"wgpy-{re.escape(_version())}-cp311-abi3-linux_[a-z0-9_]+\.whl", wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert NATIVE in names, sorted(n for n in names if "_native" in n)
        assert not [n for n in names if n.endswith(".so") and n != NATIVE]
        assert f"wgpy-{_version()}.dist-info/licenses/LICENSE" in names
        wheel_meta = zf.read(f"wgpy-{_version()}.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_meta and "Tag: cp311-abi3-" in wheel_meta
        unpacked = tmp / "unpacked"
        zf.extractall(unpacked)
    # the module in the wheel loads, for this version: a fresh interpreter imports wgpy from the unpacked wheel
    code = (f"import sys; sys.path.insert(0, {str(unpacked)!r}); import wgpy._native as n; "
            "print(n.__file__); print(n.available(), n.load_error())")
    env = {k: v for k, v in os.environ.items() if k != "WGPY_NATIVE"}
    out = _run([sys.executable, "-I", "-c", code], cwd=tmp, env=env).splitlines()
    assert out[0].startswith(str(unpacked)) and out[1] == "True None", out


def test_license_file_is_the_declared_mit_licence() -> None:
    text = (REPO / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "MIT"
    assert text.startswith("MIT License\n") and "Copyright (c)" in text and "the wgpy authors" in text
    assert "LICENSE" in PYPROJECT["project"]["license-files"]


def test_wheel_from_the_checkout_is_abi3_with_the_native_module(tmp_path: Path) -> None:
    out = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)], cwd=tmp_path)
    _check_wheel(out, tmp_path)


def test_sdist_builds_and_a_wheel_builds_from_it(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--sdist", "-o", str(dist), str(REPO)], cwd=tmp_path)
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == f"wgpy-{_version()}.tar.gz"
    top = f"wgpy-{_version()}"
    with tarfile.open(sdist) as tf:
        names = set(tf.getnames())
    wanted = ["LICENSE", "README.md", "setup.py", "pyproject.toml", "wgpy/_native/_build.py",
              "wgpy/_native/wgpy_native.h", "wgpy/_native/wgdp_io.c", "kubespan/discovery/proto/cluster.proto",
              "deploy/systemd/kubespan-agent.service", "deploy/Containerfile"]
    assert not [w for w in wanted if f"{top}/{w}" not in names], sorted(names)
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(sdist), "--no-deps", "-q", "-w", str(wheels)], cwd=tmp_path)
    _check_wheel(wheels, tmp_path)
