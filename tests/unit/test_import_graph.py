"""wgpy's modules import each other without a loop, and no wgpy or kubespan module is over 500 lines.

The graph has one edge per import a module runs -- at module level or inside a
function -- to another wgpy module; imports under ``if TYPE_CHECKING:`` are
type-only and left out.  ``from . import x`` points at the submodule ``x`` when
there is one, else at the package.  Each module must also import on its own in
a fresh interpreter (a loop that the graph misses would fail there).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WGPY = ROOT / "wgpy"
GENERATED = {"_build.py"}  # the cffi build script, run at install, not imported by the package
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(WGPY.rglob("*.py")) if p.name not in GENERATED}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def edges(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in MODULES)
            continue
        if node.level:
            base_parts = package.split(".")
            base = ".".join(base_parts[: len(base_parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in MODULES:
                out.add(sub)
            elif target in MODULES:
                out.add(target)
    out.discard(name)
    return out


GRAPH = {name: edges(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = dfs(start)
            if found:
                return found
    return None


def test_the_graph_sees_the_engine() -> None:
    assert {"wgpy.send", "wgpy.receive", "wgpy.icmp"} <= GRAPH["wgpy.device"]
    assert "wgpy._native" in GRAPH["wgpy.dataplane"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_loop() -> None:
    assert find_cycle(GRAPH) is None


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"wgpy.__main__"}))  # __main__ runs the daemon
def test_module_imports_alone(name: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_under_500_lines(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


KUBESPAN_MODULES = {module_name(p): p for p in sorted((ROOT / "kubespan").rglob("*.py"))
                    if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))}  # generated protobuf aside


@pytest.mark.parametrize("name", sorted(KUBESPAN_MODULES))
def test_kubespan_module_under_500_lines(name: str) -> None:
    assert len(KUBESPAN_MODULES[name].read_text().splitlines()) <= MAX_LINES
