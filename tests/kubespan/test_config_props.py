"""Property tests: config parsing and filters fail only with ConfigError."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubespan.config import ConfigError, NodeConfig, parse_config
from kubespan.filters import filter_ips, validate_rules

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "version", "kind", "apiVersion", "machine", "cluster", "network", "kubespan", "enabled", "mtu", "filters",
    "endpoints", "excludeAdvertisedNetworks", "podCIDRs", "advertiseKubernetesNetworks", "allowDownPeerBypass",
    "harvestExtraEndpoints", "relay", "id", "secret", "discovery", "registries", "service", "kubernetes", "disabled",
    "endpoint", "name", "clusterID", "clusterSecret", "extraAnnouncedEndpoints", "hostname",
]
KINDS = ["KubeSpanConfig", "KubeSpanEndpointsConfig", "KubespanEndpointsConfig", "DiscoveryServiceConfig",
         "DiscoveryIdentityConfig", "HostnameConfig", "NetworkRuleConfig"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["v1alpha1", "0.0.0.0/0", "!10.0.0.0/8", "::/0", "10.0.0.1", "1.2.3.4:51820", "[::1]:5",
                     "https://discovery.talos.dev/", "http://[::1]:3000", "grpc://x", "", "!",
                     "lZMVFOBvNauUpKY3oLXKQhtn0sYtQyFWMNEmwn1GDWw=", "abc", "1420", *KINDS]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)


RULES = ["0.0.0.0/0", "!192.168.0.0/16", "::/0", "10.0.0.1", "!", "10", "fd00::/8"]
CIDRS = ["10.96.0.0/12", "2007::/64", "10.0.0.1", "1.2.3.4/33", "fd00::/8"]
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "enabled": st.booleans(),
    "advertiseKubernetesNetworks": st.booleans(),
    "allowDownPeerBypass": st.booleans(),
    "harvestExtraEndpoints": st.booleans(),
    "relay": st.booleans(),
    "mtu": st.integers(1200, 70000),
    "filters": st.fixed_dictionaries({}, optional={
        "endpoints": st.lists(st.sampled_from(RULES), max_size=4),
        "excludeAdvertisedNetworks": st.lists(st.sampled_from(CIDRS), max_size=3)}),
    "podCIDRs": st.lists(st.sampled_from(CIDRS), max_size=3),
    "extraAnnouncedEndpoints": st.lists(st.sampled_from(["1.2.3.4:51820", "[::1]:5", "1.2.3.4", "[1.2.3.4]:1"]),
                                        max_size=3),
    "name": st.sampled_from(["a", "b", "", "legacy"]),
    "endpoint": st.sampled_from(["https://discovery.talos.dev/", "http://[::1]:3000", "grpc://x:1", "ftp://x",
                                 "https://x/p", ""]),
    "clusterID": st.sampled_from(["id", ""]),
    "clusterSecret": st.sampled_from(["lZMVFOBvNauUpKY3oLXKQhtn0sYtQyFWMNEmwn1GDWw=", "abc", ""]),
    "id": st.sampled_from(["id", ""]),
    "secret": st.sampled_from(["lZMVFOBvNauUpKY3oLXKQhtn0sYtQyFWMNEmwn1GDWw=", "abc"]),
    "discovery": st.fixed_dictionaries({}, optional={
        "enabled": st.booleans(),
        "registries": st.fixed_dictionaries({}, optional={
            "service": st.fixed_dictionaries({}, optional={"disabled": st.booleans(), "endpoint": st.sampled_from(
                ["https://discovery.talos.dev/", "http://127.0.0.1:3000", "https://x/path"])})})}),
    "hostname": st.sampled_from(["node-1", ""]),
}


def value_for(key: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(key)
    if plausible is None:
        return VALUES
    return st.one_of(*[plausible] * 7, VALUES)


def fields(draw: st.DrawFn, keys: list[str]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    return {key: draw(value_for(key)) for key in chosen}


KUBESPAN_KEYS = ["enabled", "advertiseKubernetesNetworks", "allowDownPeerBypass", "harvestExtraEndpoints", "mtu",
                 "filters", "podCIDRs", "relay"]
KIND_KEYS = {
    "KubeSpanConfig": KUBESPAN_KEYS,
    "KubeSpanEndpointsConfig": ["extraAnnouncedEndpoints"],
    "KubespanEndpointsConfig": ["extraAnnouncedEndpoints"],
    "DiscoveryServiceConfig": ["name", "endpoint"],
    "DiscoveryIdentityConfig": ["clusterID", "clusterSecret"],
    "HostnameConfig": ["hostname"],
    "NetworkRuleConfig": KEYS,
}


def legacy_doc(draw: st.DrawFn) -> dict[str, Any]:
    network = {"kubespan": fields(draw, KUBESPAN_KEYS), "hostname": draw(value_for("hostname"))}
    return {"version": draw(st.sampled_from(["v1alpha1"] * 6 + [None, 1])),
            "machine": {"network": network}, "cluster": fields(draw, ["id", "secret", "discovery"])}


def kind_doc(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    body = fields(draw, KIND_KEYS[kind])
    body["kind"] = kind
    body["apiVersion"] = draw(st.sampled_from(["v1alpha1"] * 8 + ["v2", None]))
    return body


@st.composite
def documents(draw: st.DrawFn) -> list[Any]:
    """Mostly our own shapes with plausible values; now and then anything."""
    docs: list[Any] = [legacy_doc(draw)] if draw(st.booleans()) else []
    docs += [kind_doc(draw) for _ in range(draw(st.integers(0, 4)))]
    if draw(st.integers(0, 7)) == 0:
        docs.insert(draw(st.integers(0, len(docs))), draw(VALUES))
    return docs


def parse_or_config_error(text: str) -> NodeConfig | None:
    try:
        return parse_config(text)
    except ConfigError as exc:
        assert isinstance(exc.path, str)
        return None


@SETTINGS
@given(documents())
def test_random_structures_raise_only_config_error(docs: list[Any]) -> None:
    try:
        text = yaml.safe_dump_all(docs, default_flow_style=False)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    cfg = parse_or_config_error(text)
    if cfg is not None:
        assert cfg.kubespan.mtu >= 1280
        if cfg.kubespan.enabled:
            assert cfg.discovery_endpoints and cfg.identity is not None
            assert len(cfg.identity.cluster_secret) == 32


YAMLISH = st.lists(
    st.sampled_from(list("abcdefmnv01:-[]{}'\"!&*#|>%@`,.?/\\\t\n ")
                    + ["\n  ", "---\n", "kubespan", "enabled: ", "mtu: ", "kind: ", "!!binary ", "2001-02-30"]),
    max_size=40,
).map("".join)


@SETTINGS
@given(st.one_of(YAMLISH, st.text(max_size=60)))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    parse_or_config_error(text)


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from(["!", "!!", "0.0.0.0/0", "::/0", "/", "1.2.3.4/"]),
                          st.integers(), st.none()), max_size=5))
def test_filters_fail_only_at_validation_with_config_error(rules: list[Any]) -> None:
    addrs = [ipaddress.ip_address(a) for a in ("10.0.0.1", "2001:db8::1")]
    try:
        valid = validate_rules(rules, "filters.endpoints")
    except ConfigError:
        try:
            filter_ips(addrs, rules)
        except ConfigError:
            return
        raise AssertionError("filter_ips accepted rules that validation rejected")
    result = filter_ips(addrs, valid)
    assert set(result) <= set(addrs)


DATA = Path(__file__).parent / "data"
VALID_BASES = [list(yaml.safe_load_all((DATA / name).read_text()))
               for name in ("legacy-controlplane.yaml", "multidoc-1.14.yaml", "misspelled-kind.yaml")]


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(paths_of(child, prefix + (key,)))
    return out


@st.composite
def mutated_valid_configs(draw: st.DrawFn) -> list[Any]:
    """A valid fixture with one to three values replaced or removed."""
    docs: list[Any] = copy.deepcopy(draw(st.sampled_from(VALID_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(docs)))
        parent: Any = docs
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(st.one_of(value_for(str(path[-1])), VALUES))
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return docs


@SETTINGS
@given(mutated_valid_configs())
def test_mutated_valid_configs_raise_only_config_error(docs: list[Any]) -> None:
    cfg = parse_or_config_error(yaml.safe_dump_all(docs, default_flow_style=False))
    if cfg is not None and cfg.kubespan.enabled:
        assert cfg.discovery_endpoints and cfg.identity is not None
        assert len(cfg.identity.cluster_secret) == 32 and cfg.identity.cluster_id
        assert 1280 <= cfg.kubespan.mtu <= 65535


# Where the fixtures hold a section we model, and the YAML path an error there names.
MODELLED_SECTIONS = [
    ("legacy-controlplane.yaml", (0, "machine", "network", "kubespan"), "machine.network.kubespan"),
    ("legacy-controlplane.yaml", (0, "machine", "network", "kubespan", "filters"),
     "machine.network.kubespan.filters"),
    ("legacy-controlplane.yaml", (0, "cluster", "discovery"), "cluster.discovery"),
    ("legacy-controlplane.yaml", (0, "cluster", "discovery", "registries"), "cluster.discovery.registries"),
    ("legacy-controlplane.yaml", (0, "cluster", "discovery", "registries", "service"),
     "cluster.discovery.registries.service"),
    ("legacy-controlplane.yaml", (0, "cluster", "discovery", "registries", "kubernetes"),
     "cluster.discovery.registries.kubernetes"),
    ("misspelled-kind.yaml", (0,), "KubeSpanConfig"),
    ("misspelled-kind.yaml", (1,), "KubespanEndpointsConfig"),
    ("misspelled-kind.yaml", (2,), "DiscoveryServiceConfig[default]"),
    ("misspelled-kind.yaml", (3,), "DiscoveryIdentityConfig"),
]
FIELD_NAMES = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True), st.integers(-5, 5))


@SETTINGS
@given(st.sampled_from(MODELLED_SECTIONS), FIELD_NAMES, VALUES)
def test_an_unknown_key_in_a_modelled_section_is_a_config_error_at_its_path(
        section: tuple[str, tuple[Any, ...], str], key: Any, value: Any) -> None:
    name, where, path = section
    docs = list(yaml.safe_load_all((DATA / name).read_text()))
    node: Any = docs
    for step in where:
        node = node[step]
    if key in node or key in ("apiVersion", "kind") and len(where) == 1:
        return
    node[key] = value
    try:
        parse_config(yaml.safe_dump_all(docs, default_flow_style=False))
    except ConfigError as exc:
        if isinstance(key, str):
            assert exc.path == f"{path}.{key}" and exc.message.startswith("unknown field"), str(exc)
        else:
            assert exc.path == path and exc.message.endswith("is not a field name"), str(exc)
    else:
        raise AssertionError(f"{path}.{key} was accepted")
