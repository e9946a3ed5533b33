"""Applying a parsed JSONPath template to plain JSON values (``kubespan.jsonpath``'s second half).

Contract: ``Template(nodes).find(data)`` returns the result groups (one per action,
per range item) or raises ``JsonPathError`` (missing key unless ``allow_missing``,
index out of bounds, incompatible comparison), never another exception, with the
semantics of Kubernetes' ``k8s.io/client-go/util/jsonpath``.  Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .jsonpath_ast import (
    Field, Filter, JsonPathError, Literal, Node, Path, Recursive, Slice, Step, UnionStep, Wildcard,
)


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; ``find`` applies it."""

    nodes: tuple[Node, ...]
    allow_missing: bool = False

    def find(self, data: Any) -> list[list[Any]]:
        groups: list[list[Any]] = []
        _run(self.nodes, data, groups, self.allow_missing)
        return groups


# --- evaluation ---------------------------------------------------------------------------


def _run(nodes: tuple[Node, ...], data: Any, groups: list[list[Any]], allow_missing: bool) -> None:
    for node in nodes:
        if isinstance(node, Literal):
            groups.append([node.value])
        elif isinstance(node, Path):
            groups.append(_eval(node, [data], allow_missing))
        else:
            for value in _eval(node.path, [data], allow_missing):
                _run(node.body, value, groups, allow_missing)


def _eval(path: Path, values: list[Any], allow_missing: bool) -> list[Any]:
    for step in path.steps:
        values = _step(step, values, allow_missing)
    return values


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=str)]
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):  # Go indexes a string by byte
        return list(value.encode("utf-8"))
    return []


def _step(step: Step, values: list[Any], allow_missing: bool) -> list[Any]:
    if isinstance(step, Field):
        if not values:
            return []
        found = [v[step.name] for v in values if isinstance(v, dict) and step.name in v]
        if not found and not allow_missing:
            raise JsonPathError(f"{step.name} is not found")
        return found
    if isinstance(step, Wildcard):
        return [c for v in values for c in _children(v)]
    if isinstance(step, Recursive):
        return _recursive(values, 0)
    if isinstance(step, Slice):
        return [item for v in values if v is not None for item in _slice(step, v)]
    if isinstance(step, UnionStep):
        return [item for p in step.paths for item in _eval(p, values, allow_missing)]
    return [item for v in values for item in _filter_list(step, v, allow_missing)]


def _recursive(values: list[Any], depth: int) -> list[Any]:
    if depth > 64:
        raise JsonPathError("data nested too deeply for ..")
    out: list[Any] = []
    for value in values:
        children = _children(value)
        if children:
            out.append(value)
            out.extend(_recursive(children, depth + 1))
    return out


def _slice(step: Slice, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise JsonPathError(f"{_go_type(value)} is not array or slice")
    n = len(value)
    start = step.start if step.start is not None else 0
    if start < 0:
        start += n
    if step.single:
        end = start + 1
    else:
        end = step.end if step.end is not None else n
        if end < 0:
            end += n
    if start == end:
        return []
    if not 0 <= start < n:
        raise JsonPathError(f"array index out of bounds: index {start}, length {n}")
    if not 0 <= end <= n:
        raise JsonPathError(f"array index out of bounds: index {end - 1}, length {n}")
    if start > end:
        raise JsonPathError(f"starting index {start} is greater than ending index {end}")
    stride = 1 if step.step is None else step.step
    if stride <= 0:
        raise JsonPathError("step must be > 0")
    return value[start:end:stride]


def _filter_list(step: Filter, value: Any, allow_missing: bool) -> list[Any]:
    if not isinstance(value, list):
        raise JsonPathError(f"{_go_type(value)} is not array or slice and cannot be filtered")
    out: list[Any] = []
    for item in value:
        if step.operator == "exists":
            try:
                if _eval(step.left, [item], allow_missing):
                    out.append(item)
            except JsonPathError:
                pass
            continue
        lefts = _eval(step.left, [item], allow_missing)
        rights = [step.right.value] if isinstance(step.right, Literal) else (
            _eval(step.right, [item], allow_missing) if step.right is not None else [])
        if not lefts or not rights:
            continue
        if len(lefts) > 1 or len(rights) > 1:
            raise JsonPathError("can only compare one element at a time")
        if _compare(step.operator, lefts[0], rights[0]):
            out.append(item)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=~":
        if not (isinstance(left, str) and isinstance(right, str)):
            raise JsonPathError("regexp search only supports strings")
        try:
            return re.search(right, left) is not None
        except (re.error, RecursionError, OverflowError) as exc:
            raise JsonPathError(f"invalid regexp {right[:64]!r}: {exc}") from None
    kind = _kind(left)
    if kind != _kind(right) or kind == "other":
        raise JsonPathError(f"incompatible types for comparison: {_go_type(left)} and {_go_type(right)}")
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if kind == "bool":
        raise JsonPathError("invalid type for comparison: bool")
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])


def _go_type(value: Any) -> str:
    return {dict: "map[string]interface {}", list: "[]interface {}", str: "string", bool: "bool",
            int: "int", float: "float64"}.get(type(value), "<nil>")

