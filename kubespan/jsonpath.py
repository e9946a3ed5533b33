"""The JSONPath templates of ``kubespan get -o jsonpath=...`` and of the table columns.

Contract: the dialect talosctl uses, Kubernetes' ``k8s.io/client-go/util/jsonpath``
(talosctl: siderolabs/talos cmd/talosctl/cmd/talos/output/jsonpath.go and
table.go), on plain JSON values (dict, list, str, int, float, bool, None):

    template  text outside braces is literal; each ``{...}`` is an action
    action    a path, a quoted string (``{"\\n"}``), ``range PATH`` ... ``end``
    path      ``$`` / ``@`` (current), ``.name``, ``..name`` (recursive), ``.*``,
              ``[n]``, ``[a:b:c]``, ``[*]``, ``['name']``, unions ``[0,1]`` /
              ``['a','b']``, filters ``[?(@.x == "y")]`` with ``== != < > <= >= =~``
              or ``[?(@.x)]`` (exists)

``parse(text) -> Template`` raises ``JsonPathError`` on anything else;
``Template.find(data)`` returns the result groups (one per action, per range
item) or raises ``JsonPathError`` (missing key unless ``allow_missing``, index
out of bounds, incompatible comparison), never another exception.  Printing
the results is ``get``'s business.  Pure; bounded: templates of at most
``MAX_TEMPLATE`` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from .errors import KubespanError

__all__ = ["JsonPathError", "Template", "parse"]

MAX_TEMPLATE = 4096
OPERATORS = ("==", "!=", "<=", ">=", "=~", "<", ">")
_FIELD_END = set(" \t\r\n.,[]$@{}()=!<>~")


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


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; ``find`` applies it."""

    nodes: tuple[Node, ...]
    allow_missing: bool = False

    def find(self, data: Any) -> list[list[Any]]:
        groups: list[list[Any]] = []
        _run(self.nodes, data, groups, self.allow_missing)
        return groups


# --- parsing --------------------------------------------------------------------------------


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.s[j] if j < len(self.s) else ""

    def startswith(self, prefix: str) -> bool:
        return self.s.startswith(prefix, self.i)

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def fail(self, message: str) -> JsonPathError:
        return JsonPathError(f"{message} at offset {self.i} of {self.s[:80]!r}")


def parse(text: str, *, allow_missing: bool = False) -> Template:
    """Parse a template (see the module contract)."""
    if len(text) > MAX_TEMPLATE:
        raise JsonPathError(f"template longer than {MAX_TEMPLATE} characters")
    r = _Reader(text)
    flat: list[tuple[str, Any]] = []
    while r.i < len(r.s):
        j = r.s.find("{", r.i)
        if j < 0:
            flat.append(("node", Literal(r.s[r.i:])))
            break
        if j > r.i:
            flat.append(("node", Literal(r.s[r.i:j])))
        r.i = j + 1
        flat.extend(_action(r))
    nodes, rest = _nest(flat, 0)
    if rest != len(flat):
        raise JsonPathError("not in range, nothing to end")
    return Template(tuple(nodes), allow_missing)


def _nest(flat: list[tuple[str, Any]], i: int) -> tuple[list[Node], int]:
    out: list[Node] = []
    while i < len(flat):
        kind, value = flat[i]
        if kind == "end":
            return out, i
        if kind == "range":
            body, i = _nest(flat, i + 1)
            out.append(Range(value, tuple(body)))
            if i < len(flat):
                i += 1  # past the matching end
            continue
        out.append(value)
        i += 1
    return out, i


def _action(r: _Reader) -> list[tuple[str, Any]]:
    """One ``{...}`` (the opening brace consumed) as flat items."""
    r.skip_spaces()
    out: list[tuple[str, Any]] = []
    for keyword in ("range", "end"):
        if r.startswith(keyword) and (r.peek(len(keyword)) in (" ", "\t", "}", ".", "@", "$", "[")):
            r.i += len(keyword)
            r.skip_spaces()
            if keyword == "end":
                out.append(("end", None))
                _close(r)
                return out
            path = _path(r)
            if not path.steps and r.peek() != "}":
                raise r.fail("range needs a path")
            out.append(("range", path))
            _close(r)
            return out
    while True:
        r.skip_spaces()
        c = r.peek()
        if c == "}":
            r.i += 1
            return out
        if c == "":
            raise r.fail("unclosed action")
        if c in ".[$@":
            out.append(("node", _path(r)))
            continue
        literal = _scalar(r)
        if literal is None:
            raise r.fail(f"unrecognized character in action: {c!r}")
        out.append(("node", literal))


def _scalar(r: _Reader) -> Literal | None:
    """A quoted string, a number, ``true`` or ``false``; ``None`` if none starts here."""
    c = r.peek()
    if c in ("'", '"'):
        return Literal(_quoted(r))
    if c and c in "-+0123456789":
        return Literal(_number(r))
    for word, value in (("true", True), ("false", False)):
        if r.startswith(word):
            r.i += len(word)
            return Literal(value)
    return None


def _close(r: _Reader) -> None:
    r.skip_spaces()
    if r.peek() != "}":
        raise r.fail("unclosed action")
    r.i += 1


def _path(r: _Reader) -> Path:
    steps: list[Step] = []
    while True:
        c = r.peek()
        if c in ("$", "@"):
            r.i += 1
        elif c == ".":
            r.i += 1
            if r.peek() == ".":
                r.i += 1
                steps.append(Recursive())
            name = _field_name(r)
            if name == "*":
                steps.append(Wildcard())
            elif name:
                steps.append(Field(name))
        elif c == "[":
            r.i += 1
            steps.append(_bracket(r))
        else:
            return Path(tuple(steps))


def _field_name(r: _Reader) -> str:
    if r.peek() == "*":
        r.i += 1
        return "*"
    out: list[str] = []
    while r.i < len(r.s) and r.s[r.i] not in _FIELD_END:
        if r.s[r.i] == "\\" and r.i + 1 < len(r.s):
            r.i += 1
        out.append(r.s[r.i])
        r.i += 1
    return "".join(out)


def _quoted(r: _Reader) -> str:
    quote = r.peek()
    r.i += 1
    out: list[str] = []
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
    while True:
        c = r.peek()
        if c == "":
            raise r.fail("unterminated quoted string")
        r.i += 1
        if c == quote:
            return "".join(out)
        if c == "\\":
            e = r.peek()
            if e not in escapes:
                raise r.fail(f"invalid escape \\{e}")
            out.append(escapes[e])
            r.i += 1
        else:
            out.append(c)


_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?([eE][-+]?\d+)?)")
_INDEX = re.compile(r"[-+]?\d{1,18}")


def _number(r: _Reader) -> int | float:
    m = _NUMBER.match(r.s, r.i)
    if not m or len(m.group(0)) > 32:
        raise r.fail("invalid number")
    r.i = m.end()
    body = m.group(0)
    return float(body) if any(ch in body for ch in ".eE") else int(body)


def _bracket(r: _Reader) -> Step:
    """After ``[``: a filter, union, quoted key, wildcard or slice, up to ``]``."""
    r.skip_spaces()
    step: Step
    if r.peek() == "?":
        r.i += 1
        step = _filter(r)
    else:
        items = [_bracket_item(r)]
        r.skip_spaces()
        while r.peek() == ",":
            r.i += 1
            items.append(_bracket_item(r))
            r.skip_spaces()
        step = items[0] if len(items) == 1 else UnionStep(tuple(Path((s,)) for s in items))
    r.skip_spaces()
    if r.peek() != "]":
        raise r.fail("unterminated array")
    r.i += 1
    return step


def _bracket_item(r: _Reader) -> Step:
    r.skip_spaces()
    c = r.peek()
    if c in ("'", '"'):
        return Field(_quoted(r))
    if c == "*":
        r.i += 1
        return Wildcard()
    parts: list[int | None] = []
    for _ in range(3):
        r.skip_spaces()
        m = _INDEX.match(r.s, r.i)
        parts.append(int(m.group(0)) if m else None)
        if m:
            r.i = m.end()
        r.skip_spaces()
        if r.peek() != ":":
            break
        r.i += 1
    if len(parts) == 1:
        if parts[0] is None:
            raise r.fail("invalid array index")
        return Slice(parts[0], None, None, True)
    parts += [None] * (3 - len(parts))
    return Slice(parts[0], parts[1], parts[2], False)


def _filter(r: _Reader) -> Filter:
    if r.peek() != "(":
        raise r.fail("filter must be ?(...)")
    r.i += 1
    r.skip_spaces()
    left = _path(r)
    r.skip_spaces()
    op = next((o for o in OPERATORS if r.startswith(o)), None)
    right: Path | Literal | None = None
    if op is None:
        op = "exists"
    else:
        r.i += len(op)
        r.skip_spaces()
        right = _path(r) if r.peek() in ("@", "$", ".") else _scalar(r)
        if right is None:
            raise r.fail("filter needs a value to compare with")
        r.skip_spaces()
    if r.peek() != ")":
        raise r.fail("unclosed filter")
    r.i += 1
    return Filter(left, op, right)


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
