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
from typing import Any

from .jsonpath_ast import (
    MAX_TEMPLATE, OPERATORS, Field, Filter, JsonPathError, Literal, Node, Path, Range, Recursive, Slice, Step,
    UnionStep, Wildcard,
)
from .jsonpath_eval import Template

__all__ = ["JsonPathError", "Template", "parse"]

_FIELD_END = set(" \t\r\n.,[]$@{}()=!<>~")


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


