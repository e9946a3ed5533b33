"""``kubespan get``: show the agent's resources as ``talosctl get`` does.

Contract (kubespan.md §8): ``get TYPE [ID] [-w] [-o table|yaml|json|jsonpath=TEMPLATE]
[--api-socket PATH]`` (``KUBESPAN_API_SOCKET`` honoured; default
``/run/kubespan/agent.sock``).  TYPE resolves as in talosctl
(``resources.resolve``): the fully qualified type or any alias, an ambiguous
alias (``ksps``: peer specs and peer statuses, as in Talos) is an error.

Output follows talosctl (siderolabs/talos cmd/talosctl/cmd/talos/output/
table.go, yaml.go, json.go, jsonpath.go; get.go for the watch):

- ``table``: NODE, NAMESPACE, TYPE, ID, VERSION, then the type's print columns,
  each the k8s JSONPath of the resource definition run on the spec (lists and
  maps print as compact JSON, ``["a","b"]``; missing fields empty); cells padded
  to the column width plus 3 spaces, as Go's tabwriter.  With ``-w`` a ``*``
  column after NODE holds ``+`` (created), ``-`` (destroyed) or a space
  (updated); the current resources come first as ``+`` rows in one aligned block,
  then one line per event.
- ``yaml``: per resource ``node: NODE``, with ``-w`` ``event: created|updated|
  destroyed``, then ``metadata`` and ``spec`` (4-space indent); ``---`` between.
- ``json``: per resource one JSON object ``{"metadata", "node", "spec"}`` (plus
  ``event`` with ``-w``), keys sorted, 4-space indent, one after another.
- ``jsonpath=T``: T runs on that object; each result on its own line, lists and
  maps as indented JSON.

A missing ID, an unknown type, no agent: ``error: <message>`` and exit 1.  A
bad ``-o`` is a usage error (exit 2, ``parse_output``).  Formatting is pure
(the writers take a text stream); only ``run`` talks to the socket.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import yaml

from . import jsonpath
from .api import API_SOCKET_ENV, DEFAULT_API_SOCKET, request, watch
from .errors import KubespanError
from .resources import ResourceType, resolve

__all__ = ["COLUMNS", "OutputFormat", "Writer", "compact_json", "indented_json", "json_stream", "make_writer",
           "parse_output", "run", "socket_path", "text"]

# The PrintColumns of each resource definition (siderolabs/talos
# pkg/machinery/resources/kubespan/*.go, pkg/machinery/resources/cluster/*.go).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "KubeSpanIdentities": [("Address", "{.address}"), ("PublicKey", "{.publicKey}")],
    "KubeSpanPeerSpecs": [("Label", "{.label}"), ("Endpoints", "{.endpoints}")],
    "KubeSpanPeerStatuses": [("Label", "{.label}"), ("Endpoint", "{.endpoint}"), ("State", "{.state}"),
                             ("Rx", "{.receiveBytes}"), ("Tx", "{.transmitBytes}")],
    "KubeSpanEndpoints": [("Endpoint", "{.endpoint}"), ("Affiliate ID", "{.affiliateID}")],
    "Affiliates": [("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("Addresses", "{.addresses}")],
    "Members": [("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("OS", "{.operatingSystem}"),
                ("Addresses", "{.addresses}")],
    "Identities": [("ID", "{.nodeId}")],
}

EVENT_LABELS = {"created": "+", "destroyed": "-", "updated": " "}
TABWRITER_PADDING = 3


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A parsed ``-o``: ``kind`` is table, yaml, json or jsonpath (with ``template``)."""

    kind: str
    template: jsonpath.Template | None = None


def parse_output(text: str) -> OutputFormat:
    """``-o`` as talosctl accepts it (output.go ``NewWriter``); ``KubespanError`` otherwise."""
    if text in ("table", "yaml", "json"):
        return OutputFormat(text)
    if text.startswith("jsonpath="):
        try:
            return OutputFormat("jsonpath", jsonpath.parse(text[len("jsonpath="):]))
        except jsonpath.JsonPathError as exc:
            raise KubespanError(f"error parsing jsonpath: {exc}") from None
    raise KubespanError(f"output format {text[:64]!r} is not supported (table, yaml, json, jsonpath=TEMPLATE)")


# --- printing results as Go does (encoding/json, fmt.Print) ---------------------------------


def _escape_html(text: str) -> str:
    # Go's encoding/json escapes these by default
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def compact_json(value: Any) -> str:
    """Go ``json.Marshal`` of a decoded value (sorted keys, no spaces)."""
    return _escape_html(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def indented_json(value: Any) -> str:
    """Go ``json.MarshalIndent(v, "", "    ")``."""
    return _escape_html(json.dumps(value, sort_keys=True, indent=4, ensure_ascii=False))


def text(value: Any) -> str:
    """One result as Go prints it: lists and maps as JSON, scalars with ``fmt.Print``."""
    if isinstance(value, (dict, list)):
        return compact_json(value)
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


class Writer(Protocol):
    """talosctl's ``output.Writer``."""

    def header(self, rtype: ResourceType, with_events: bool) -> None: ...
    def resource(self, node: str, item: dict[str, Any], event: str | None) -> None: ...
    def flush(self) -> None: ...


def tabwriter(rows: Sequence[Sequence[str]]) -> str:
    """Go ``tabwriter`` (minwidth 0, padding 3, pad with spaces): every cell but the
    last of a line is padded to its column's width plus 3."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [max((len(r[i]) for r in rows if i < len(r) - 1), default=0) for i in range(ncols)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i] + TABWRITER_PADDING) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "\n".join(lines) + "\n"


def column_text(template: jsonpath.Template, spec: Any) -> str:
    """A print column's cell: k8s ``JSONPath.Execute`` (results of one group joined by a space)."""
    try:
        groups = template.find(spec)
    except jsonpath.JsonPathError:
        return ""
    return "".join(" ".join(text(v) for v in group) for group in groups)


class TableWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.rows: list[list[str]] = []
        self.with_events = False
        self.rtype: ResourceType | None = None
        self.columns: list[jsonpath.Template] = []

    def header(self, rtype: ResourceType, with_events: bool) -> None:
        self.rtype, self.with_events = rtype, with_events
        names = COLUMNS[rtype.name]
        self.columns = [jsonpath.parse(path, allow_missing=True) for _, path in names]
        self.rows.append(["NODE", *(["*"] if with_events else []), "NAMESPACE", "TYPE", "ID", "VERSION",
                          *(name.upper() for name, _ in names)])

    def resource(self, node: str, item: dict[str, Any], event: str | None) -> None:
        assert self.rtype is not None
        meta, spec = item["metadata"], item["spec"]
        label = [EVENT_LABELS.get(event or "", " ")] if self.with_events else []
        self.rows.append([node, *label, str(meta["namespace"]), self.rtype.display_type, str(meta["id"]),
                          str(meta["version"]), *(column_text(t, spec) for t in self.columns)])

    def flush(self) -> None:
        self.out.write(tabwriter(self.rows))
        self.rows = []
        self.out.flush()


class _TalosYamlDumper(yaml.SafeDumper):
    """go-yaml v3's look: sequences indented under their key, timestamps plain, ``""``."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_TalosYamlDumper.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if value == "" else None)


_TalosYamlDumper.add_representer(str, _represent_str)


def to_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_TalosYamlDumper, indent=4, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1 << 20)


class YamlWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.need_dashes = False
        self.with_events = False

    def header(self, rtype: ResourceType, with_events: bool) -> None:
        self.with_events = with_events

    def resource(self, node: str, item: dict[str, Any], event: str | None) -> None:
        if self.need_dashes:
            self.out.write("---\n")
        self.need_dashes = True
        self.out.write(f"node: {node}\n")
        if self.with_events:
            self.out.write(f"event: {event}\n")
        self.out.write(to_yaml({"metadata": item["metadata"], "spec": item["spec"]}))

    def flush(self) -> None:
        self.out.flush()


def encodable(node: str, item: dict[str, Any], event: str | None, with_events: bool) -> dict[str, Any]:
    """The object talosctl's JSON writer encodes (json.go ``prepareEncodableData``)."""
    data = {"metadata": item["metadata"], "spec": item["spec"], "node": node}
    if with_events:
        data["event"] = event
    return data


class JsonWriter:
    def __init__(self, out: TextIO, template: jsonpath.Template | None = None) -> None:
        self.out = out
        self.template = template
        self.with_events = False

    def header(self, rtype: ResourceType, with_events: bool) -> None:
        self.with_events = with_events

    def resource(self, node: str, item: dict[str, Any], event: str | None) -> None:
        data = encodable(node, item, event, self.with_events)
        if self.template is None:
            self.out.write(indented_json(data) + "\n")
            return
        for group in self.template.find(data):
            for value in group:
                shown = indented_json(value) if isinstance(value, (dict, list)) else text(value)
                self.out.write(shown + "\n")

    def flush(self) -> None:
        self.out.flush()


def make_writer(fmt: OutputFormat, out: TextIO) -> Writer:
    if fmt.kind == "table":
        return TableWriter(out)
    if fmt.kind == "yaml":
        return YamlWriter(out)
    return JsonWriter(out, fmt.template)


def json_stream(text: str) -> list[Any]:
    """Read back ``-o json``: the JSON values one after another (``ValueError`` if not)."""
    decoder, i = json.JSONDecoder(), 0
    out: list[Any] = []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def socket_path(option: str | None) -> str:
    """``--api-socket``, else ``$KUBESPAN_API_SOCKET``, else the default."""
    return option or os.environ.get(API_SOCKET_ENV) or DEFAULT_API_SOCKET


def _list(writer: Writer, rtype: ResourceType, path: str, resource_id: str | None) -> None:
    reply = request(path, rtype.type, resource_id)
    items = reply.get("items")
    if not isinstance(items, list):
        raise KubespanError("malformed response from the agent")
    writer.header(rtype, False)
    node = str(reply.get("node", ""))
    for item in items:
        writer.resource(node, item, None)
    writer.flush()


def _watch(writer: Writer, rtype: ResourceType, path: str, resource_id: str | None) -> None:
    """get.go ``watchResources``: flush once the current set is written, then per event."""
    writer.header(rtype, True)
    node = ""
    bootstrapped = False
    for line in watch(path, rtype.type, resource_id):
        event = line.get("event")
        if event is None:
            node = str(line.get("node", ""))
        elif event == "bootstrapped":
            bootstrapped = True
            writer.flush()
        elif event in EVENT_LABELS and isinstance(line.get("resource"), dict):
            writer.resource(node, line["resource"], str(event))
            if bootstrapped:
                writer.flush()
    writer.flush()


def run(resource_name: str, resource_id: str | None = None, output: OutputFormat | str = "table",
        api_socket: str | None = None, watch_changes: bool = False) -> int:
    """``kubespan get``: print the resources (or watch them); ``KubespanError`` on failure."""
    fmt = parse_output(output) if isinstance(output, str) else output
    rtype = resolve(resource_name)
    writer = make_writer(fmt, sys.stdout)
    path = socket_path(api_socket)
    try:
        if watch_changes:
            _watch(writer, rtype, path, resource_id)
        else:
            _list(writer, rtype, path, resource_id)
    except KeyboardInterrupt:  # talosctl: a cancelled watch ends quietly
        writer.flush()
    except jsonpath.JsonPathError as exc:
        raise KubespanError(f"error finding result for jsonpath: {exc}") from None
    except BrokenPipeError:  # `| head`: stop quietly (the Python docs' recipe for SIGPIPE)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
