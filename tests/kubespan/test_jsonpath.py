"""kubespan/jsonpath.py against the k8s client-go util/jsonpath semantics talosctl relies on
(cases in the style of client-go's jsonpath_test.go, results as groups of values)."""

from __future__ import annotations

from typing import Any

import pytest

from kubespan.get import column_text, text
from kubespan.jsonpath import JsonPathError, parse

DATA: dict[str, Any] = {
    "kind": "List",
    "items": [
        {"name": "a", "state": "up", "rx": 10, "eps": ["1.1.1.1:1", "2.2.2.2:2"], "ok": True},
        {"name": "b", "state": "down", "rx": 3, "eps": [], "ok": False, "extra": {"name": "inner"}},
    ],
}

CASES = [
    ("{.kind}", [["List"]]),
    ("kind={.kind}!", [["kind="], ["List"], ["!"]]),
    ("{.items[0].name}", [["a"]]),
    ("{.items[-1].name}", [["b"]]),
    ("{.items[*].name}", [["a", "b"]]),
    ("{.items[0:1].name}", [["a"]]),
    ("{.items[1:].name}", [["b"]]),
    ("{.items[::2].name}", [["a"]]),
    ("{.items[0,1].state}", [["up", "down"]]),
    ("{['kind']}", [["List"]]),
    ("{.items[0]['name','state']}", [["a", "up"]]),
    ('{.items[?(@.state=="up")].name}', [["a"]]),
    ("{.items[?(@.rx > 5)].name}", [["a"]]),
    ("{.items[?(@.rx<=3)].name}", [["b"]]),
    ("{.items[?(@.ok==true)].name}", [["a"]]),
    ("{.items[?(@.extra)].name}", [["b"]]),
    ('{.items[?(@.name=~"^b")].state}', [["down"]]),
    ("{.items[?(@.name==@.name)].rx}", [[10, 3]]),
    ("{..name}", [["a", "b", "inner"]]),
    ("{range .items[*]}[{.name}]{end}", [["["], ["a"], ["]"], ["["], ["b"], ["]"]]),
    ('{range .items[*]}{.name}{"\\n"}{end}', [["a"], ["\n"], ["b"], ["\n"]]),
    ("{range .items[0].eps[*]}{@}{end}", [["1.1.1.1:1"], ["2.2.2.2:2"]]),
    ("{.items[1].eps}", [[[]]]),
    ("{.items[1].eps[0:0]}", [[]]),
    ("{@.kind}", [["List"]]),
    ("{$.kind}", [["List"]]),
    ("{.kind} {.items[0].rx}", [["List"], [" "], [10]]),
    ("{1}{true}", [[1], [True]]),
    ("plain text", [["plain text"]]),
]


@pytest.mark.parametrize("template, groups", CASES)
def test_templates(template: str, groups: list[list[Any]]) -> None:
    assert parse(template).find(DATA) == groups


ERRORS = [
    ("{.missing}", "missing is not found"),
    ("{.items[5]}", "array index out of bounds: index 5, length 2"),
    ("{.items[0:3]}", "array index out of bounds: index 2, length 2"),
    ("{.items[1:0]}", "starting index 1 is greater than ending index 0"),
    ("{.items[::0]}", "step must be > 0"),
    ("{.kind[0]}", "string is not array or slice"),
    ("{.kind[?(@.a)]}", "string is not array or slice and cannot be filtered"),
    ("{.items[?(@.rx == 'x')]}", "incompatible types for comparison"),
    ('{.items[?(@.name =~ "(")]}', "invalid regexp"),
]


@pytest.mark.parametrize("template, message", ERRORS)
def test_evaluation_errors(template: str, message: str) -> None:
    with pytest.raises(JsonPathError) as err:
        parse(template).find(DATA)
    assert message in str(err.value)


@pytest.mark.parametrize("template", ["{.kind", "{end}", "{range .items[*]}{end}{end}", "{.items[}", "{.items[x]}",
                                      "{#}", '{"open}', "{.items[?(@.a==)]}", "{.items[?(@.a}", "{ranger}",
                                      "{" * 5000])
def test_parse_errors(template: str) -> None:
    with pytest.raises(JsonPathError):
        parse(template)


def test_missing_keys_allowed_for_columns() -> None:
    assert parse("{.missing}", allow_missing=True).find(DATA) == [[]]
    assert column_text(parse("{.missing}", allow_missing=True), DATA) == ""


def test_printing_as_go() -> None:
    # table.go columns: lists and maps as compact JSON (k8s PrintResults), results of a group joined by a space
    assert column_text(parse("{.items[0].eps}"), DATA) == '["1.1.1.1:1","2.2.2.2:2"]'
    assert column_text(parse("{.items[*].name}"), DATA) == "a b"
    assert text({"b": 1, "a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e","b":1}'
    assert [text(v) for v in (True, None, 3, 2.0, 0.5, "x")] == ["true", "<nil>", "3", "2", "0.5", "x"]
