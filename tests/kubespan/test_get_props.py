"""Property tests: JSONPath templates, type names, API requests and ``get`` arguments fail only
with typed errors (or argparse's usage exit 2), never with a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubespan import jsonpath
from kubespan.api import answer, parse_request
from kubespan.cli import main
from kubespan.errors import KubespanError
from kubespan.get import OutputFormat, indented_json, make_writer, parse_output
from kubespan.get import text as go_text
from kubespan.resources import KUBESPAN_PEER_SPECS, MEMBERS, RESOURCE_TYPES, ResourceStore, resolve

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

PIECES = ["{", "}", ".", "..", "[", "]", "*", "@", "$", ",", ":", "?(", ")", "==", "!=", "<", ">=", "=~",
          "range ", "end", '"', "'", "\\", "\\n", " ", "-1", "0", "2", "1e3", "true", "metadata", "spec",
          "endpoints", "id", "x", "{.", "{range .spec.endpoints[*]}", "{end}", '{"\\n"}', "[?(@.a==1)]",
          "[0:2]", "[::0]", "['id']", "[0,1]", "{..id}", "{@}"]
TEMPLATES = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["id", "spec", "metadata", "a", "endpoints", "x"]),
                                            inner, max_size=4)),
    max_leaves=20,
)


@SETTINGS
@given(TEMPLATES, JSON)
def test_jsonpath_parses_and_runs_or_raises_jsonpath_error(text: str, data: Any) -> None:
    for allow in (False, True):
        try:
            template = jsonpath.parse(text, allow_missing=allow)
        except jsonpath.JsonPathError:
            return
        try:
            groups = template.find(data)
        except jsonpath.JsonPathError:
            continue
        for group in groups:
            for value in group:
                assert isinstance(go_text(value), str)
                json.loads(indented_json(value))


@SETTINGS
@given(st.text(max_size=300))
def test_text_outside_braces_is_literal(text: str) -> None:
    if "{" in text:
        return
    groups = jsonpath.parse(text).find({"a": 1})
    assert "".join(str(v) for g in groups for v in g) == text


@SETTINGS
@given(st.lists(st.integers(-5, 5), max_size=6), st.integers(-8, 8), st.integers(-8, 8))
def test_jsonpath_slices_agree_with_a_model(items: list[int], start: int, end: int) -> None:
    """k8s evalArray: negative indices count from the end; out of bounds is an error, not a clamp."""
    n = len(items)
    s, e = start + n if start < 0 else start, end + n if end < 0 else end
    try:
        (got,) = jsonpath.parse(f"{{[{start}:{end}]}}").find(items)
    except jsonpath.JsonPathError:
        assert s != e and not (0 <= s < n and 0 <= e <= n and s <= e)
        return
    assert got == ([] if s == e else items[s:e])


@SETTINGS
@given(st.text(max_size=40))
def test_type_names_resolve_or_raise_typed(name: str) -> None:
    try:
        rtype = resolve(name)
    except KubespanError:
        return
    assert rtype in RESOURCE_TYPES


def fixture_store() -> ResourceStore:
    store = ResourceStore(clock=lambda: 1.0)
    store.publish(MEMBERS, {"m": {"hostname": "h", "addresses": ["10.0.0.1"]}})
    store.publish(KUBESPAN_PEER_SPECS, {"k": {"label": "l", "endpoints": ["1.2.3.4:5"]}})
    return store


REQUEST_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=10),
                           st.sampled_from(["members", "ksps", "Members.cluster.talos.dev", "m", "nope", "ksi"]),
                           st.lists(st.integers(), max_size=2))


@SETTINGS
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["get", "watch", "id", "x"]), REQUEST_VALUES, max_size=3)
                 .map(lambda d: json.dumps(d).encode() + b"\n")))
def test_api_answers_any_line_with_items_or_an_error(line: bytes) -> None:
    reply = answer(fixture_store(), "n", line)
    assert ("error" in reply) != ("items" in reply)
    if "error" in reply:
        assert isinstance(reply["error"], str)
    try:
        parse_request(line)
    except KubespanError:
        pass


@SETTINGS
@given(st.text(max_size=60))
def test_output_formats_parse_or_raise_typed(text: str) -> None:
    try:
        fmt = parse_output(text)
    except KubespanError:
        return
    assert fmt.kind in ("table", "yaml", "json", "jsonpath")


@SETTINGS
@given(st.sampled_from(["table", "yaml", "json"]).map(OutputFormat) | TEMPLATES.map(lambda t: _or_table(f"jsonpath={t}")))
def test_writers_render_any_store_item(fmt: OutputFormat) -> None:
    import io

    out = io.StringIO()
    store = fixture_store()
    for rtype in (MEMBERS, KUBESPAN_PEER_SPECS):
        writer = make_writer(fmt, out)
        writer.header(rtype, True)
        for item in store.list(rtype):
            try:
                writer.resource("node", item, "created")
            except jsonpath.JsonPathError:
                pass
        writer.flush()


def _or_table(text: str) -> OutputFormat:
    try:
        return parse_output(text)
    except KubespanError:
        return OutputFormat("table")


ARGS = st.lists(st.one_of(
    st.sampled_from(["members", "ksps", "ksi", "identities", "nope", "m", "-o", "json", "yaml", "table", "xml",
                     "jsonpath={.metadata.id}", "jsonpath={", "-w", "--watch", "--output", "-x", "--", "a b",
                     "--api-socket"]),
    st.text(max_size=8),
), max_size=6)


@SETTINGS
@given(ARGS)
def test_get_arguments_fail_typed_or_with_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setenv("KUBESPAN_API_SOCKET", str(tmp_path / "no-agent.sock"))
    try:
        code = main(["get", *argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
        assert code in (0, 2)
    else:
        assert code == 1  # nothing listens: a typed error, one line
    _, err = capsys.readouterr()
    assert "Traceback" not in err
