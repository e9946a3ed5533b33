"""Talos machine config parsing: fixtures, defaults, conflicts, each validation error."""

from __future__ import annotations

import base64
import ipaddress
import textwrap
from pathlib import Path

import pytest

from kubespan.config import (
    ClusterIdentity,
    ConfigError,
    DiscoveryEndpoint,
    KubeSpanConfig,
    NodeConfig,
    load_config,
    parse_config,
    parse_discovery_endpoint,
)

DATA = Path(__file__).parent / "data"
SECRET = "lZMVFOBvNauUpKY3oLXKQhtn0sYtQyFWMNEmwn1GDWw="
CLUSTER_ID = "8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo="
TALOS_DEFAULT = DiscoveryEndpoint("legacy", "https://discovery.talos.dev/", "discovery.talos.dev", 443, False)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def legacy(kubespan: str = "enabled: true", discovery: str = "enabled: true", ident: str = "") -> str:
    ident = ident or f"id: {CLUSTER_ID}\n    secret: {SECRET}"
    return (
        "version: v1alpha1\nmachine:\n  network:\n    kubespan:\n"
        + textwrap.indent(kubespan, "      ")
        + f"\ncluster:\n    {ident}\n    discovery:\n"
        + textwrap.indent(discovery, "      ")
        + "\n"
    )


MULTIDOC_TAIL = f"""
---
apiVersion: v1alpha1
kind: DiscoveryServiceConfig
name: default
endpoint: https://discovery.talos.dev/
---
apiVersion: v1alpha1
kind: DiscoveryIdentityConfig
clusterID: {CLUSTER_ID}
clusterSecret: {SECRET}
"""


def multidoc(kubespan_body: str) -> str:
    return "apiVersion: v1alpha1\nkind: KubeSpanConfig\n" + kubespan_body + MULTIDOC_TAIL


def raises(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value


# --- fixtures ---------------------------------------------------------------------


def test_legacy_controlplane_fixture() -> None:
    cfg = load_config(str(DATA / "legacy-controlplane.yaml"))
    assert cfg.kubespan == KubeSpanConfig(
        enabled=True,
        advertise_kubernetes_networks=True,
        allow_down_peer_bypass=False,
        harvest_extra_endpoints=False,
        mtu=1380,
        endpoint_filters=("0.0.0.0/0", "!192.168.0.0/16", "::/0"),
        exclude_advertised_networks=(net("10.96.0.0/12"),),
        extra_announced_endpoints=(),
    )
    assert cfg.kubespan.force_routing
    assert cfg.discovery_endpoints == (TALOS_DEFAULT,)
    assert cfg.identity is not None
    assert cfg.identity.cluster_id == CLUSTER_ID
    assert cfg.identity.cluster_secret == base64.b64decode("XzyUgSi4i/lEC248xU4J8fEWW9WtHL+lEa+kXmFevqw=")
    assert cfg.identity.cluster_secret_b64 == "XzyUgSi4i/lEC248xU4J8fEWW9WtHL+lEa+kXmFevqw="
    assert cfg.node_name == "cp-1"
    assert cfg.pod_cidrs == (net("10.244.1.0/24"), net("fd00:10:244:1::/64"))


def test_multidoc_fixture() -> None:
    cfg = load_config(str(DATA / "multidoc-1.14.yaml"))
    assert cfg.kubespan == KubeSpanConfig(
        enabled=True,
        advertise_kubernetes_networks=False,
        allow_down_peer_bypass=True,
        harvest_extra_endpoints=True,
        mtu=1420,
        endpoint_filters=("::/0", "10.0.0.0/8", "!10.3.4.1"),
        exclude_advertised_networks=(net("2007::/64"), net("192.168.1.0/24")),
        extra_announced_endpoints=(("192.168.13.46", 52000), ("2001:db8::5", 51820)),
    )
    assert not cfg.kubespan.force_routing
    assert cfg.discovery_endpoints == (
        DiscoveryEndpoint("primary", "https://discovery.talos.dev/", "discovery.talos.dev", 443, False),
        DiscoveryEndpoint("self-hosted", "http://10.5.0.2:3000", "10.5.0.2", 3000, True),
    )
    assert cfg.identity == ClusterIdentity(
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        base64.b64decode("vlf2HU1NEZL3Ezi9Tk+RZBLJUbjnsHnTzs3wK9JNk6Q="),
        "vlf2HU1NEZL3Ezi9Tk+RZBLJUbjnsHnTzs3wK9JNk6Q=",
    )
    assert cfg.node_name == "worker-7"
    assert cfg.pod_cidrs == ()


def test_misspelled_endpoints_kind_is_accepted() -> None:
    cfg = load_config(str(DATA / "misspelled-kind.yaml"))
    assert cfg.kubespan.extra_announced_endpoints == (("169.254.121.121", 5820),)
    assert cfg.discovery_endpoints == (
        DiscoveryEndpoint("default", "grpc://discovery.example.internal", "discovery.example.internal", 443, False),
    )
    assert cfg.node_name is None


@pytest.mark.parametrize(
    ("fixture", "path", "words"),
    [
        ("conflict-kubespan.yaml", "KubeSpanConfig", "machine.network.kubespan"),
        ("conflict-discovery.yaml", "DiscoveryServiceConfig", "cluster.discovery"),
        ("conflict-identity.yaml", "DiscoveryIdentityConfig", "cluster.id"),
    ],
)
def test_conflict_fixtures(fixture: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(DATA / fixture))
    assert info.value.path == path
    assert words in str(info.value)


def test_both_endpoints_kinds_conflict_with_each_other() -> None:
    text = multidoc("enabled: true\n") + (
        "---\napiVersion: v1alpha1\nkind: KubeSpanEndpointsConfig\nextraAnnouncedEndpoints: []\n"
        "---\napiVersion: v1alpha1\nkind: KubespanEndpointsConfig\nextraAnnouncedEndpoints: []\n"
    )
    assert "duplicate" in str(raises(text))


def test_duplicate_documents() -> None:
    assert "duplicate" in str(raises(multidoc("enabled: true\n") + "---\napiVersion: v1alpha1\nkind: KubeSpanConfig\n"))
    dup_service = MULTIDOC_TAIL.split("---")[1]
    err = raises(multidoc("enabled: true\n") + "---" + dup_service)
    assert err.path == "DiscoveryServiceConfig[default].name" and "'default'" in str(err)
    err = raises("version: v1alpha1\n---\nversion: v1alpha1\n")
    assert "more than one v1alpha1" in str(err)


# --- defaults -----------------------------------------------------------------------


def test_a_config_without_kubespan_is_kubespan_disabled_without_discovery() -> None:
    for text in ("version: v1alpha1\n", "version: v1alpha1\nmachine: {}\ncluster: {}\n"):
        cfg = parse_config(text)
        assert cfg == NodeConfig(KubeSpanConfig(), (), None, None, ())
    assert KubeSpanConfig().mtu == 1420 and KubeSpanConfig().endpoint_filters is None


@pytest.mark.parametrize("text", ["", "---\n", "\n# only a comment\n", "---\n---\n"])
def test_an_empty_config_is_an_error(text: str) -> None:
    assert raises(text).message == "the config is empty (no YAML document)"


def test_legacy_defaults_and_the_default_endpoint() -> None:
    cfg = parse_config(legacy())
    assert cfg.kubespan == KubeSpanConfig(enabled=True)
    assert cfg.discovery_endpoints == (TALOS_DEFAULT,)
    # The generated form spells out service: {} and kubernetes.disabled.
    cfg2 = parse_config(legacy(discovery="enabled: true\nregistries:\n  kubernetes: {disabled: true}\n  service: {}"))
    assert cfg2 == cfg


def test_legacy_custom_endpoint_and_normalisation() -> None:
    cfg = parse_config(legacy(discovery="enabled: true\nregistries:\n  service:\n    endpoint: http://[::1]:3000/"))
    assert cfg.discovery_endpoints == (DiscoveryEndpoint("legacy", "http://[::1]:3000/", "::1", 3000, True),)
    assert cfg.discovery_endpoints[0].address == "[::1]:3000"


def test_discovery_without_kubespan_still_needs_identity() -> None:
    text = f"version: v1alpha1\ncluster:\n  id: {CLUSTER_ID}\n  discovery:\n    enabled: true\n"
    err = raises(text)
    assert err.path == "cluster.secret"
    cfg = parse_config(text.replace("  discovery:", f"  secret: {SECRET}\n  discovery:"))
    assert not cfg.kubespan.enabled and cfg.discovery_endpoints == (TALOS_DEFAULT,)


def test_identity_without_need_is_optional_but_validated() -> None:
    assert parse_config(f"version: v1alpha1\ncluster:\n  id: {CLUSTER_ID}\n").identity is None
    cfg = parse_config(f"version: v1alpha1\ncluster:\n  id: {CLUSTER_ID}\n  secret: {SECRET}\n")
    assert cfg.identity is not None and cfg.identity.cluster_id == CLUSTER_ID
    assert raises("version: v1alpha1\ncluster:\n  id: x\n  secret: short\n").path == "cluster.secret"


def test_explicit_empty_filters_drop_everything_and_null_means_default() -> None:
    assert parse_config(multidoc("enabled: true\nfilters:\n  endpoints: []\n")).kubespan.endpoint_filters == ()
    assert parse_config(multidoc("enabled: true\nfilters:\n  endpoints:\n")).kubespan.endpoint_filters is None
    assert parse_config(multidoc("enabled: true\nfilters: {}\n")).kubespan.endpoint_filters is None
    assert parse_config(multidoc("enabled: true\nmtu:\n")).kubespan.mtu == 1420


def test_pod_cidrs_extension_in_the_kubespan_document() -> None:
    cfg = parse_config(multidoc("enabled: true\nadvertiseKubernetesNetworks: true\npodCIDRs: [10.244.3.0/24]\n"))
    assert cfg.pod_cidrs == (net("10.244.3.0/24"),)


def test_relay_extension_defaults_off_and_reads_in_both_places() -> None:
    assert parse_config(multidoc("enabled: true\n")).kubespan.relay is False
    assert parse_config(multidoc("enabled: true\nrelay: true\n")).kubespan.relay is True
    assert parse_config(legacy(kubespan="enabled: true\nrelay: true")).kubespan.relay is True
    assert parse_config(legacy(kubespan="enabled: true\nrelay: false")).kubespan.relay is False
    err = raises(multidoc("enabled: true\nrelay: 'yes'\n"))
    assert err.path == "KubeSpanConfig.relay" and "'yes'" in str(err)
    # a misspelling is still an unknown field, with the extension as the hint
    assert raises(multidoc("enabled: true\nrelays: true\n")).path == "KubeSpanConfig.relays"
    assert "'relay'" in str(raises(legacy(kubespan="enabled: true\nrelays: true")))


def test_other_talos_sections_and_kinds_are_ignored() -> None:
    text = legacy() + (
        "futureTopLevel: {a: 1}\n---\napiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: x\n"
        "---\napiVersion: v1alpha1\nkind: WatchdogTimerConfig\ndevice: /dev/watchdog0\n"
    )
    text = text.replace("cluster:\n", "cluster:\n    clusterName: c\n    network: {dnsDomain: x}\n", 1)
    text = text.replace("  network:\n", "  network:\n    nameservers: [1.1.1.1]\n", 1)
    assert parse_config(text).kubespan.enabled


@pytest.mark.parametrize(("text", "path", "hint"), [
    (legacy(kubespan="enabled: true\nadvertiseKubernetesNetwork: true"),
     "machine.network.kubespan.advertiseKubernetesNetwork", "advertiseKubernetesNetworks"),
    (legacy(kubespan="enabled: true\nfilters:\n  enpoints: []"), "machine.network.kubespan.filters.enpoints",
     "endpoints"),
    (legacy(discovery="enabled: true\nregistires: {}"), "cluster.discovery.registires", "registries"),
    (legacy(discovery="enabled: false\nregistries:\n  service: {endpont: x}"),
     "cluster.discovery.registries.service.endpont", "endpoint"),
    (legacy(discovery="enabled: true\nregistries:\n  kubernetes: {disable: true}"),
     "cluster.discovery.registries.kubernetes.disable", "disabled"),
    (multidoc("enabled: true\nharvestExtraEndpoint: true\n"), "KubeSpanConfig.harvestExtraEndpoint",
     "harvestExtraEndpoints"),
    (multidoc("enabled: true\nfilters:\n  excludeAdvertisedNetwork: []\n"),
     "KubeSpanConfig.filters.excludeAdvertisedNetwork", "excludeAdvertisedNetworks"),
    (multidoc("enabled: true\n").replace("name: default", "name: default\nendpoints: x"),
     "DiscoveryServiceConfig[default].endpoints", "endpoint"),
    (multidoc("enabled: true\n").replace("clusterID:", "clusterId: x\nclusterID:"),
     "DiscoveryIdentityConfig.clusterId", "clusterID"),
    (multidoc("enabled: true\n") + "---\napiVersion: v1alpha1\nkind: KubeSpanEndpointsConfig\nextraEndpoints: []\n",
     "KubeSpanEndpointsConfig.extraEndpoints", None),
])
def test_an_unknown_field_in_a_modelled_section_is_an_error(text: str, path: str, hint: str | None) -> None:
    err = raises(text)
    assert err.path == path
    assert err.message.startswith("unknown field")
    if hint:
        assert err.message == f"unknown field (did you mean {hint!r}?)"
    assert len(str(err).splitlines()) == 1 and SECRET not in str(err)


@pytest.mark.parametrize(("kind", "hint"), [("KubeSpanConfg", "KubeSpanConfig"),
                                            ("DiscoveryServiceconfig", "DiscoveryServiceConfig"),
                                            ("TotallyUnknown", None)])
def test_an_unknown_kind_is_an_error_with_a_hint(kind: str, hint: str | None) -> None:
    err = raises(multidoc("enabled: true\n").replace("kind: KubeSpanConfig", f"kind: {kind}"))
    assert err.path == "document 1.kind"
    suffix = f" (did you mean {hint!r}?)" if hint else ""
    assert err.message == f"{kind!r} is not a Talos document kind{suffix}"


def test_hostname_config_document() -> None:
    text = multidoc("enabled: true\n") + "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: node-a\n"
    assert parse_config(text).node_name == "node-a"


def test_secret_with_newlines_is_accepted_like_go() -> None:
    text = f'version: v1alpha1\ncluster:\n  id: x\n  secret: "{SECRET[:20]}\\n{SECRET[20:]}"\n'
    cfg = parse_config(text)
    assert cfg.identity is not None and cfg.identity.cluster_secret_b64 == SECRET


# --- validation errors: each names the path and the offending value ---------------------


@pytest.mark.parametrize(
    ("text", "path", "shown"),
    [
        (legacy("enabled: true\nmtu: 1000"), "machine.network.kubespan.mtu", "1000 is below the minimum 1280"),
        (legacy("enabled: true\nmtu: 70000"), "machine.network.kubespan.mtu", "70000"),
        (legacy("enabled: true\nmtu: '1420'"), "machine.network.kubespan.mtu", "'1420'"),
        (legacy("enabled: true\nmtu: true"), "machine.network.kubespan.mtu", "True"),
        (legacy("enabled: true\nmtu: 1420.5"), "machine.network.kubespan.mtu", "1420.5"),
        (multidoc("enabled: true\nmtu: 1279\n"), "KubeSpanConfig.mtu", "1279"),
        (legacy("enabled: 'yes please'"), "machine.network.kubespan.enabled", "'yes please'"),
        (legacy("enabled: true\nallowDownPeerBypass: 1"), "machine.network.kubespan.allowDownPeerBypass", "1"),
        (legacy("enabled: true\nfilters:\n  endpoints: ['0.0.0.0/0', '!10']"),
         "machine.network.kubespan.filters.endpoints[1]", "'!10'"),
        (legacy("enabled: true\nfilters:\n  endpoints: '0.0.0.0/0'"),
         "machine.network.kubespan.filters.endpoints", "'0.0.0.0/0'"),
        (legacy("enabled: true\nfilters:\n  endpoints: [42]"), "machine.network.kubespan.filters.endpoints[0]", "42"),
        (legacy("enabled: true\nfilters: [a]"), "machine.network.kubespan.filters", "['a']"),
        (multidoc("enabled: true\nfilters:\n  excludeAdvertisedNetworks: [10.0.0.1]\n"),
         "KubeSpanConfig.filters.excludeAdvertisedNetworks[0]", "'10.0.0.1'"),
        (multidoc("enabled: true\nfilters:\n  excludeAdvertisedNetworks: [123::/456]\n"),
         "KubeSpanConfig.filters.excludeAdvertisedNetworks[0]", "'123::/456'"),
        (multidoc("enabled: true\npodCIDRs: 10.244.0.0/24\n"), "KubeSpanConfig.podCIDRs", "'10.244.0.0/24'"),
        (legacy(discovery="enabled: false"), "cluster.discovery", "no discovery service"),
        (legacy(discovery="enabled: true\nregistries:\n  service:\n    disabled: true"), "cluster.discovery",
         "no discovery service"),
        (legacy(discovery="enabled: true\nregistries:\n  service:\n    endpoint: https://d.example/v1"),
         "cluster.discovery.registries.service.endpoint", "'https://d.example/v1'"),
        (legacy(discovery="enabled: true\nregistries:\n  service:\n    endpoint: ftp://d.example/"),
         "cluster.discovery.registries.service.endpoint", "'ftp://d.example/'"),
        (legacy(discovery="enabled: true\nregistries:\n  service:\n    endpoint: 12"),
         "cluster.discovery.registries.service.endpoint", "12"),
        (legacy(discovery="enabled: true\nregistries: []"), "cluster.discovery.registries", "[]"),
        (legacy(ident="id: ''\n    secret: " + SECRET), "cluster.id", "required"),
        (legacy(ident="id: x"), "cluster.secret", "required"),
        (legacy(ident="id: [1]\n    secret: " + SECRET), "cluster.id", "[1]"),
        (legacy(ident="id: x\n    secret: " + SECRET[:-4]), "cluster.secret", "<redacted>"),
        (legacy(ident="id: x\n    secret: " + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode()), "cluster.secret",
         "<redacted>"),
        (legacy(ident="id: x\n    secret: " + base64.b64encode(bytes(16)).decode()), "cluster.secret", "got 16"),
        (multidoc("enabled: true\n").replace(f"clusterID: {CLUSTER_ID}", "clusterID: ''"),
         "DiscoveryIdentityConfig.clusterID", "required"),
        (multidoc("enabled: true\n").replace(f"clusterSecret: {SECRET}", "clusterSecret: 'abc='"),
         "DiscoveryIdentityConfig.clusterSecret", "<redacted>"),
        (multidoc("enabled: true\n").replace("name: default", "name: ''"), "DiscoveryServiceConfig#1.name", "''"),
        (multidoc("enabled: true\n").replace("endpoint: https://discovery.talos.dev/", "endpoint: ''"),
         "DiscoveryServiceConfig[default].endpoint", "required"),
        (multidoc("enabled: true\n").replace("https://discovery.talos.dev/", "discovery.talos.dev:443"),
         "DiscoveryServiceConfig[default].endpoint", "'discovery.talos.dev:443'"),
        (multidoc("enabled: true\n").replace("https://discovery.talos.dev/", "https://:443/"),
         "DiscoveryServiceConfig[default].endpoint", "'https://:443/'"),
        (multidoc("enabled: true\n").replace("https://discovery.talos.dev/", "https://d.example:0/"),
         "DiscoveryServiceConfig[default].endpoint", "'https://d.example:0/'"),
        (multidoc("enabled: true\n").replace("https://discovery.talos.dev/", "https://d.example:99999/"),
         "DiscoveryServiceConfig[default].endpoint", "99999"),
        (multidoc("enabled: true\n").replace("kind: KubeSpanConfig", "kind: KubeSpanConfig\napiVersion: v2"),
         "KubeSpanConfig.apiVersion", "'v2'"),
        ("version: v2\n", "version", "'v2'"),
        ("apiVersion: v1alpha1\nkind: [1]\n", "document 1.kind", "[1]"),
        ("version: v1alpha1\n---\n- a list\n", "document 2", "['a list']"),
        ("42\n", "document 1", "42"),
        ("version: v1alpha1\nmachine: []\n", "machine", "[]"),
        ("version: v1alpha1\nmachine:\n  network: 5\n", "machine.network", "5"),
        ("version: v1alpha1\nmachine:\n  network:\n    hostname: [x]\n", "machine.network.hostname", "['x']"),
        ("version: v1alpha1\ncluster: abc\n", "cluster", "'abc'"),
    ],
)
def test_validation_errors_name_path_and_value(text: str, path: str, shown: str) -> None:
    err = raises(text)
    assert err.path == path
    assert str(err).startswith(f"{path}: ")
    assert shown in str(err)


@pytest.mark.parametrize(
    "endpoint",
    ["1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536", "2001:db8::1:51820", "[1.2.3.4]:51820", "[2001:db8::1]",
     "[fe80::1%eth0]:51820", "host.example:51820", "1.2.3.4:+5", "1.2.3.4: 5", 51820],
)
def test_bad_extra_announced_endpoints(endpoint: object) -> None:
    text = multidoc("enabled: true\n") + (
        f"---\napiVersion: v1alpha1\nkind: KubeSpanEndpointsConfig\nextraAnnouncedEndpoints: [{endpoint!r}]\n"
    )
    err = raises(text)
    assert err.path == "KubeSpanEndpointsConfig.extraAnnouncedEndpoints[0]"


def test_secrets_never_appear_in_errors() -> None:
    bad_secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="  # valid base64 but 20 bytes
    for text in (
        legacy(ident=f"id: x\n    secret: {bad_secret}"),
        legacy(ident="id: x\n    secret: [not, a, string]"),
        multidoc("enabled: true\n").replace(SECRET, bad_secret),
    ):
        err = raises(text)
        assert bad_secret not in str(err) and "not, a, string" not in str(err)
        assert "<redacted>" in str(err)


def test_cluster_identity_repr_is_redacted() -> None:
    cfg = parse_config(legacy())
    assert cfg.identity is not None
    assert SECRET not in repr(cfg) and SECRET not in repr(cfg.identity) and SECRET not in str(cfg.identity)
    assert repr(cfg.identity.cluster_secret) not in repr(cfg)


def test_yaml_syntax_errors_do_not_echo_the_document() -> None:
    err = raises(f"cluster:\n  secret: {SECRET}\n  id: [unclosed\n")
    assert err.path == "" and "invalid YAML" in str(err) and "line" in str(err)
    assert SECRET not in str(err)
    for text in ("a: 2001-02-30\n", "a: !!binary 'x'\nb: [", "a: &x 1\nb: *y\n", "\t- tab"):
        assert "invalid YAML" in str(raises(text))


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "missing.yaml"))
    assert str(tmp_path / "missing.yaml") in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(str(bad))


@pytest.mark.parametrize(
    ("url", "host", "port", "insecure"),
    [
        ("https://discovery.talos.dev/", "discovery.talos.dev", 443, False),
        ("https://discovery.talos.dev", "discovery.talos.dev", 443, False),
        ("http://10.5.0.2:3000", "10.5.0.2", 3000, True),
        ("http://discovery.example", "discovery.example", 80, True),
        ("grpc://discovery-grpc.talos.dev:6443", "discovery-grpc.talos.dev", 6443, False),
        ("grpc://d.example", "d.example", 443, False),
        ("https://discovery-secondary.talos.dev/path", "discovery-secondary.talos.dev", 443, False),
        ("HTTPS://User:pw@Example.COM:8443/?q#f", "Example.COM", 8443, False),
        ("https://[2001:db8::1]/", "2001:db8::1", 443, False),
    ],
)
def test_endpoint_normalisation(url: str, host: str, port: int, insecure: bool) -> None:
    ep = parse_discovery_endpoint("n", url, "x")
    assert (ep.host, ep.port, ep.insecure, ep.url, ep.name) == (host, port, insecure, url, "n")


@pytest.mark.parametrize("value,expected", [("controlplane", "controlplane"), ("init", "init"),
                                            ("worker", "worker"), ("join", "worker")])
def test_machine_type_from_v1alpha1(value: str, expected: str) -> None:
    text = "version: v1alpha1\nmachine:\n  type: %s\ncluster: {}\n" % value
    assert parse_config(text).machine_type == expected


def test_machine_type_default_and_bad_value() -> None:
    assert parse_config("version: v1alpha1\nmachine: {}\n").machine_type == "worker"
    with pytest.raises(ConfigError, match=r"machine.type: 'boss'"):
        parse_config("version: v1alpha1\nmachine:\n  type: boss\n")
