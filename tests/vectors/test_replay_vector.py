"""The kernel's replay-counter self-test (vectors/replay_counter.json) through ReplayWindow."""

from __future__ import annotations

import ast
import json
import operator
from pathlib import Path
from typing import Any, Callable

import pytest

from wgpy.constants import REJECT_AFTER_MESSAGES, REPLAY_WINDOW
from wgpy.replay import ReplayWindow

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "replay_counter.json"
DATA: dict[str, Any] = json.loads(VECTOR.read_text())

_OPS: dict[type, Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
}


def evaluate(expr: str) -> int:
    """Evaluate a vector's symbolic counter expression (ints, names, + - * **)."""
    names = {k: v for k, v in DATA["constants"].items() if isinstance(v, int)}

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"unsupported expression {expr!r}")

    return walk(ast.parse(expr, mode="eval"))


def test_vector_constants_match_ours() -> None:
    constants = DATA["constants"]
    assert constants["COUNTER_WINDOW_SIZE"] == REPLAY_WINDOW == 8128
    assert constants["T_LIM"] == REPLAY_WINDOW + 1
    assert constants["REJECT_AFTER_MESSAGES"] == REJECT_AFTER_MESSAGES
    assert evaluate(constants["REJECT_AFTER_MESSAGES_expr"]) == REJECT_AFTER_MESSAGES
    assert "counter.c" in DATA["source"]["file"]


def test_expressions_match_numbers() -> None:
    steps = list(DATA["sequence"])
    for case in DATA["bulk"]:
        steps.extend(case["then"])
        loop = case["loop"]
        assert evaluate(loop["first_expr"]) == loop["first"]
        assert evaluate(loop["last_expr"]) == loop["last"]
    for step in steps:
        assert evaluate(step["counter_expr"]) == step["counter"], step


def test_numbered_sequence() -> None:
    sequence = DATA["sequence"]
    assert [s["n"] for s in sequence] == list(range(1, 35))
    window = ReplayWindow()
    results = [(s["n"], window.check(s["counter"])) for s in sequence]
    assert results == [(s["n"], s["expected"]) for s in sequence]


@pytest.mark.parametrize("case", DATA["bulk"], ids=[c["name"].split()[0] for c in DATA["bulk"]])
def test_bulk_case(case: dict[str, Any]) -> None:
    window = ReplayWindow()
    loop = case["loop"]
    step = loop["step"]
    counters = range(loop["first"], loop["last"] + step, step)
    assert len(counters) in (REPLAY_WINDOW, REPLAY_WINDOW + 1)
    rejected = [c for c in counters if window.check(c) is not loop["expected"]]
    assert rejected == []
    for then in case["then"]:
        assert window.check(then["counter"]) is then["expected"], then
