"""The sans-IO rule (style.md, Conventions 1): the protocol core imports no I/O, clock or RNG module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WGPY = Path(__file__).resolve().parents[2] / "wgpy"
SHELL = {"cli.py", "interface.py", "__main__.py"}
FORBIDDEN = {"asyncio", "socket", "time", "random", "secrets", "os", "select", "threading", "uvloop"}
CORE = sorted(p for p in WGPY.glob("*.py") if p.name not in SHELL)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_exist() -> None:
    assert {p.name for p in CORE} >= {"device.py", "handshake.py", "cookie.py", "timers.py", "keypair.py"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_does_no_io(path: Path) -> None:
    assert imported_modules(path) & FORBIDDEN == set()
