"""``kubespan`` without its extra: one line naming what is missing and how to install it, exit 1.

The installed console script (and ``python -m kubespan``) runs in a fresh
interpreter whose ``sitecustomize`` (first on ``PYTHONPATH``) puts an import
hook in front of ``sys.meta_path``: a blocked module is not found, as if its
distribution were not installed; a "broken" module is found but fails to
import (an installed distribution missing a compiled part), which only a
subcommand's lazy import meets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "kubespan"
HOOK = '''
import importlib.abc, importlib.machinery, os, sys

BLOCK = [m for m in os.environ.get("HOOK_BLOCK", "").split(",") if m]
BROKEN = [m for m in os.environ.get("HOOK_BROKEN", "").split(",") if m]


def _matches(name, modules):
    return any(name == m or name.startswith(m + ".") for m in modules)


class Broken(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ModuleNotFoundError(f"No module named {module.__name__ + '._compiled'!r}",
                                  name=module.__name__ + "._compiled")


class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _matches(name, BLOCK):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        if _matches(name, BROKEN):
            return importlib.machinery.ModuleSpec(name, Broken())
        return None


sys.meta_path.insert(0, Hook())
'''


def _run(tmp: Path, argv: list[str], block: str = "", broken: str = "") -> subprocess.CompletedProcess[str]:
    (tmp / "sitecustomize.py").write_text(HOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOK_")}
    env.update(PYTHONPATH=f"{tmp}:{REPO}", HOOK_BLOCK=block, HOOK_BROKEN=broken)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp))


def _assert_hint(res: subprocess.CompletedProcess[str], *dists: str) -> None:
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("kubespan: missing ") and "pip install 'wgpy[kubespan]'" in lines[0], lines
    assert all(d in lines[0] for d in dists), lines
    assert res.stdout == ""


def test_the_hook_blocks_and_the_unblocked_cli_runs(tmp_path: Path) -> None:
    blocked = _run(tmp_path, [sys.executable, "-c", "import grpc"], block="grpc")
    assert blocked.returncode == 1 and "ModuleNotFoundError" in blocked.stderr
    assert _run(tmp_path, [str(SCRIPT), "--help"]).returncode == 0


@pytest.mark.parametrize(("module", "dist"), [("grpc", "grpcio"), ("google.protobuf", "protobuf"),
                                              ("yaml", "PyYAML"), ("pyroute2", "pyroute2")])
@pytest.mark.parametrize("command", [["agent", "--config", "/nonexistent.yaml"], ["get", "identities"],
                                     ["discovery-service"], ["gen", "config", "--with-kubespan"]],
                         ids=lambda c: c[0])
def test_a_missing_distribution_gets_the_install_hint(module: str, dist: str, command: list[str],
                                                      tmp_path: Path) -> None:
    _assert_hint(_run(tmp_path, [str(SCRIPT), *command], block=module), dist)


def test_python_dash_m_and_every_missing_one_named(tmp_path: Path) -> None:
    res = _run(tmp_path, [sys.executable, "-m", "kubespan", "get", "members"],
               block="grpc,google.protobuf,yaml,pyroute2")
    _assert_hint(res, "grpcio", "protobuf", "PyYAML", "pyroute2")


def test_a_broken_distribution_met_by_a_lazy_import_gets_the_hint_too(tmp_path: Path) -> None:
    res = _run(tmp_path, [str(SCRIPT), "agent", "--config", "/nonexistent.yaml"], broken="grpc")
    _assert_hint(res, "grpcio")
