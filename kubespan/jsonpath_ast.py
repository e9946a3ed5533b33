"""The JSONPath syntax tree of ``kubespan.jsonpath`` (plain frozen data, no logic).

Contract: ``kubespan.jsonpath.parse`` builds these nodes, ``kubespan.jsonpath_eval``
applies them; ``JsonPathError`` is the one error either raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .errors import KubespanError

MAX_TEMPLATE = 4096
OPERATORS = ("==", "!=", "<=", ">=", "=~", "<", ">")


class JsonPathError(KubespanError):
    """A template that does not parse, or that cannot be applied to the data."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class Recursive:
    pass


@dataclass(frozen=True, slots=True)
class Slice:
    start: int | None
    end: int | None
    step: int | None
    single: bool


@dataclass(frozen=True, slots=True)
class UnionStep:
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    left: Path
    operator: str  # one of OPERATORS, or "exists"
    right: Path | Literal | None


@dataclass(frozen=True, slots=True)
class Path:
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Range:
    path: Path
    body: tuple[Node, ...]


Step = Union[Field, Wildcard, Recursive, Slice, UnionStep, Filter]
Node = Union[Literal, Path, Range]


