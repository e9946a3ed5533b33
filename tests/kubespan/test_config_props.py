"""Property tests: config parsing and filters fail only with ConfigError."""

from __future__ import annotations

import ipaddress
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
    "harvestExtraEndpoints", "id", "secret", "discovery", "registries", "service", "kubernetes", "disabled",
    "endpoint", "name", "clusterID", "clusterSecret", "extraAnnouncedEndpoints", "hostname",
]
KINDS = ["KubeSpanConfig", "KubeSpanEndpointsConfig", "KubespanEndpointsConfig", "DiscoveryServiceConfig",
         "DiscoveryIdentityConfig", "HostnameConfig", "Other"]
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


def shaped_doc(draw: st.DrawFn) -> Any:
    """A document that looks like one of ours, with random values inside."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(VALUES)
    if choice == 1:
        kubespan = draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
        cluster = draw(st.dictionaries(st.sampled_from(["id", "secret", "discovery"]), VALUES, max_size=3))
        return {"version": draw(st.sampled_from(["v1alpha1", None, 1])),
                "machine": {"network": {"kubespan": kubespan, "hostname": draw(SCALARS)}}, "cluster": cluster}
    body = draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
    body["kind"] = draw(st.sampled_from(KINDS))
    body["apiVersion"] = draw(st.sampled_from(["v1alpha1", "v1alpha1", "v2", None]))
    return body


@st.composite
def documents(draw: st.DrawFn) -> list[Any]:
    return [shaped_doc(draw) for _ in range(draw(st.integers(0, 5)))]


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
