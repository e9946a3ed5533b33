"""kubespan.affiliates: local affiliate, endpoint order, merge of raw affiliates, members."""

from __future__ import annotations

import ipaddress

import pytest

from kubespan import specs
from kubespan.affiliates import (
    AffiliateSpec, NodeAddress, from_remote, link_is_up, local_addresses, local_affiliate, local_endpoints, members,
    merge, raw_affiliates,
)
from kubespan.config import NodeConfig, parse_config
from kubespan.errors import ConfigError
from kubespan.discovery.protocol import (
    Affiliate, ControlPlane, Endpoint, KubeSpan, encode_affiliate, key_from_secret, open_affiliate, seal_affiliate,
)
from kubespan.identity import Identity, node_address, ula_prefix
from wgpy.keys import PrivateKey

CLUSTER_ID = "8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo="
SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KS_IP = node_address(CLUSTER_ID, bytes.fromhex("2e1ab6538169"))


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def ep(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(ip(host.strip("[]")), int(port))


def config(kubespan: str = "", extra: str = "") -> NodeConfig:
    text = f"""
apiVersion: v1alpha1
kind: KubeSpanConfig
enabled: true
{kubespan}
---
apiVersion: v1alpha1
kind: DiscoveryServiceConfig
name: default
endpoint: http://127.0.0.1:3000
---
apiVersion: v1alpha1
kind: DiscoveryIdentityConfig
clusterID: {CLUSTER_ID}
clusterSecret: {SECRET}
{extra}
"""
    return parse_config(text)


def identity() -> Identity:
    key = PrivateKey(bytes(range(1, 33)))
    return Identity(node_id="local-node", private_key=key, public_key=key.public_key(), address=KS_IP,
                    subnet=ula_prefix(CLUSTER_ID))


ADDRS = [
    NodeAddress(ip("127.0.0.1"), 8, "lo", "host"),
    NodeAddress(ip("::1"), 128, "lo", "host"),
    NodeAddress(ip("192.168.1.10"), 24, "eth0"),
    NodeAddress(ip("10.0.0.5"), 24, "eth1"),
    NodeAddress(ip("fe80::1"), 64, "eth0", "link"),
    NodeAddress(ip("2001:db8::5"), 64, "eth0"),
    NodeAddress(ip("10.244.3.1"), 24, "cni0"),                 # inside the pod CIDR
    NodeAddress(ip("fd7f:175a:b97c:5603::9"), 64, "siderolink"),  # SideroLink ULA (purpose 3)
    NodeAddress(KS_IP, 64, "kubespan"),
    NodeAddress(ip("169.254.5.5"), 16, "eth2"),
]


def test_local_addresses_exclusions_keep_kubespan_ula() -> None:
    got = local_addresses(ADDRS, [ipaddress.ip_network("10.244.0.0/16")])
    assert got == (ip("10.0.0.5"), ip("192.168.1.10"), ip("2001:db8::5"), KS_IP)


def test_local_endpoints_order_without_filters() -> None:
    cfg = config("podCIDRs: [10.244.0.0/16]")
    eps = local_endpoints(ADDRS, cfg, KS_IP, public_ip=ip("203.0.113.9"))
    assert [str(e) for e in eps] == ["10.0.0.5:51820", "192.168.1.10:51820", "[2001:db8::5]:51820",
                                     "203.0.113.9:51820"]


def test_public_ip_not_duplicated() -> None:
    eps = local_endpoints(ADDRS, config(), KS_IP, public_ip=ip("10.0.0.5"))
    assert [str(e) for e in eps].count("10.0.0.5:51820") == 1


def test_filters_run_after_public_ip_then_extra_endpoints() -> None:
    cfg = config(
        "filters:\n  endpoints: ['0.0.0.0/0', '!192.168.0.0/16', '!203.0.113.0/24', '::/0']",
        extra="---\napiVersion: v1alpha1\nkind: KubeSpanEndpointsConfig\n"
              "extraAnnouncedEndpoints: ['198.51.100.1:4000', '10.0.0.5:51820', '[2001:db8::99]:5']",
    )
    eps = local_endpoints(ADDRS, cfg, KS_IP, public_ip=ip("203.0.113.9"))
    assert [str(e) for e in eps] == [   # 10.244.3.1 is in the default pod subnet: never announced
        "10.0.0.5:51820", "[2001:db8::5]:51820",
        "198.51.100.1:4000", "[2001:db8::99]:5",
    ]


def test_empty_filter_list_drops_node_ips_but_keeps_extra() -> None:
    cfg = config("filters:\n  endpoints: []",
                 extra="---\napiVersion: v1alpha1\nkind: KubeSpanEndpointsConfig\n"
                       "extraAnnouncedEndpoints: ['198.51.100.1:4000']")
    assert [str(e) for e in local_endpoints(ADDRS, cfg, KS_IP, None)] == ["198.51.100.1:4000"]


def test_local_affiliate_fields() -> None:
    cfg = config("advertiseKubernetesNetworks: true\npodCIDRs: [10.244.3.0/24]\n"
                 "filters:\n  excludeAdvertisedNetworks: [192.168.0.0/16]")
    aff = local_affiliate(identity(), cfg, ADDRS, "host-a", "node-a")
    assert aff.node_id == "local-node" and aff.nodename == "node-a" and aff.hostname == "host-a"
    assert aff.kubespan is not None
    assert aff.kubespan.public_key == identity().public_key.to_base64()
    assert aff.kubespan.address == KS_IP
    assert [str(p) for p in aff.kubespan.additional_addresses] == ["10.244.3.0/24"]
    assert [str(p) for p in aff.kubespan.exclude_advertised_networks] == ["192.168.0.0/16"]
    assert ip("10.244.3.1") not in aff.addresses and KS_IP in aff.addresses


def test_local_affiliate_without_advertise_has_no_additional_addresses() -> None:
    aff = local_affiliate(identity(), config("podCIDRs: [10.244.3.0/24]"), ADDRS, "h", "n")
    assert aff.kubespan is not None and aff.kubespan.additional_addresses == ()


def v1alpha1(machine_type: str = "worker", cluster: str = "") -> str:
    """A v1alpha1 document (beside the multi-doc ones) with ``machine.type`` and a ``cluster`` section."""
    return f"---\nversion: v1alpha1\nmachine:\n  type: {machine_type}\ncluster:\n  {cluster or '{}'}\n"


def test_addresses_of_links_that_are_down_are_not_announced() -> None:
    # Talos network/node_address.go: only addresses of links that are up go into "current"/"routed"
    addrs = [NodeAddress(ip("10.0.0.5"), 24, "eth1"), NodeAddress(ip("10.1.0.5"), 24, "eth2", link_up=False),
             NodeAddress(ip("2001:db8::7"), 64, "eth2", link_up=False)]
    assert local_addresses(addrs) == (ip("10.0.0.5"),)
    assert [str(e) for e in local_endpoints(addrs, config(), KS_IP, None)] == ["10.0.0.5:51820"]
    assert local_affiliate(identity(), config(), addrs, "h", "n").addresses == (ip("10.0.0.5"),)


def test_link_is_up_follows_talos() -> None:
    # operational state up or unknown; a physical link (ethernet without a kind) also needs a carrier
    table = [
        ("UP", True, True, True), ("UP", False, True, False), ("UNKNOWN", False, False, True),
        ("UNKNOWN", True, True, True), ("UNKNOWN", False, True, False), ("DOWN", True, False, False),
        ("LOWERLAYERDOWN", False, False, False), ("DORMANT", True, True, False), ("", True, False, False),
    ]
    for operstate, carrier, physical, want in table:
        assert link_is_up(operstate, carrier, physical) is want, (operstate, carrier, physical)


def test_default_service_and_pod_subnets_are_not_announced() -> None:
    # Talos k8s/address_filter.go (NodeAddressFilterNoK8s) removes pod and service CIDRs; defaults
    # 10.244.0.0/16 and 10.96.0.0/12 (v1alpha1_clusterconfig.go PodCIDRs/ServiceCIDRs)
    addrs = [NodeAddress(ip("10.0.0.5"), 24, "eth0"), NodeAddress(ip("10.96.0.1"), 32, "kube-ipvs0"),
             NodeAddress(ip("10.111.255.254"), 32, "kube-ipvs0"), NodeAddress(ip("10.244.7.1"), 24, "cni0"),
             NodeAddress(ip("10.112.0.1"), 24, "eth1")]
    cfg = config()
    assert local_affiliate(identity(), cfg, addrs, "h", "n").addresses == (ip("10.0.0.5"), ip("10.112.0.1"))
    assert [str(e) for e in local_endpoints(addrs, cfg, KS_IP, None)] == ["10.0.0.5:51820", "10.112.0.1:51820"]


def test_configured_service_subnets_replace_the_default() -> None:
    cfg = config(extra=v1alpha1(cluster="network: {serviceSubnets: [10.43.0.0/16, 'fd00:96::/112'], "
                                        "podSubnets: [10.42.0.0/16]}"))
    assert [str(n) for n in cfg.service_subnets] == ["10.43.0.0/16", "fd00:96::/112"]
    addrs = [NodeAddress(ip("10.43.0.10"), 32, "kube-ipvs0"), NodeAddress(ip("fd00:96::1"), 128, "kube-ipvs0"),
             NodeAddress(ip("10.42.1.1"), 24, "cni0"), NodeAddress(ip("10.96.0.1"), 32, "eth0"),
             NodeAddress(ip("10.244.0.1"), 32, "eth0")]
    # the defaults are no longer excluded once the config names its own subnets
    assert local_addresses(addrs, cfg.kubernetes_networks) == (ip("10.96.0.1"), ip("10.244.0.1"))


def test_control_plane_advertised_for_control_plane_machines() -> None:
    # Talos cluster/local_affiliate.go: ControlPlane{APIServerPort: the local API server port} only
    # when machineType.IsControlPlane() (controlplane or init); default port 6443
    for machine_type in ("controlplane", "init"):
        aff = local_affiliate(identity(), config(extra=v1alpha1(machine_type)), ADDRS, "h", "n", machine_type)
        assert aff.control_plane == ControlPlane(6443), machine_type
    worker = local_affiliate(identity(), config(), ADDRS, "h", "n", "worker")
    assert worker.control_plane is None
    cfg = config(extra=v1alpha1("controlplane", "controlPlane: {endpoint: 'https://cp.example:443', "
                                                "localAPIServerPort: 7445}"))
    assert cfg.machine_type == "controlplane" and cfg.api_server_port == 7445
    aff = local_affiliate(identity(), cfg, ADDRS, "h", "n", cfg.machine_type)
    assert aff.control_plane == ControlPlane(7445)


def test_control_plane_yaml_key_is_port() -> None:
    aff = local_affiliate(identity(), config(extra=v1alpha1("controlplane")), ADDRS, "h", "n", "controlplane")
    spec = from_remote(aff, ())
    assert specs.affiliate_spec(spec)["controlPlane"] == {"port": 6443}
    assert specs.member_spec(members({"local-node": spec})["n"])["controlPlane"] == {"port": 6443}
    assert "controlPlane" not in specs.affiliate_spec(from_remote(local_affiliate(identity(), config(), ADDRS,
                                                                                  "h", "n"), ()))


def test_control_plane_survives_the_discovery_round_trip() -> None:
    aff = local_affiliate(identity(), config(extra=v1alpha1("controlplane")), ADDRS, "h", "n", "controlplane")
    # discovery-api affiliate.proto: Affiliate.control_plane = 8, ControlPlane.api_server_port = 1;
    # 6443 is the varint ab 32, so the field is 42 03 08 ab 32
    assert bytes.fromhex("420308ab32") in encode_affiliate(aff)
    key = key_from_secret(SECRET)
    back = open_affiliate(key, seal_affiliate(key, aff, bytes(12)))
    assert back == aff and back.control_plane == ControlPlane(6443)
    remote_spec = from_remote(back, ())
    assert remote_spec.control_plane == ControlPlane(6443) and remote_spec.machine_type == "controlplane"


def test_bad_local_api_server_port_is_a_config_error() -> None:
    for bad in ("'6443'", "-1", "70000", "true"):
        with pytest.raises(ConfigError, match=r"cluster\.controlPlane\.localAPIServerPort"):
            config(extra=v1alpha1("controlplane", f"controlPlane: {{localAPIServerPort: {bad}}}"))


# --- raw affiliates, merge, members ---------------------------------------------------------


def remote(node_id: str, **kw: object) -> Affiliate:
    base: dict[str, object] = dict(
        node_id=node_id, addresses=(ip("10.0.0.1"),), hostname="h1", nodename="n1", machine_type="worker",
        operating_system="Talos (v1.13.0)",
        kubespan=KubeSpan(public_key="pk1", address=ip("fd00::1"),
                          additional_addresses=(ipaddress.ip_interface("10.244.1.1/24"),)),
    )
    base.update(kw)
    return Affiliate(**base)  # type: ignore[arg-type]


def test_from_remote_masks_prefixes_and_keeps_endpoints() -> None:
    spec = from_remote(remote("n"), [ep("10.0.0.1:51820")])
    assert [str(p) for p in spec.additional_addresses] == ["10.244.1.0/24"]
    assert spec.public_key == "pk1" and spec.endpoints == (ep("10.0.0.1:51820"),)


def test_from_remote_machine_type_normalised() -> None:
    assert from_remote(remote("n", machine_type=""), []).machine_type == "worker"
    assert from_remote(remote("n", machine_type="join"), []).machine_type == "worker"
    assert from_remote(remote("n", machine_type="weird"), []).machine_type == "unknown"


def test_raw_affiliates_later_service_wins() -> None:
    first = {"n": (remote("n", hostname="old"), [ep("10.0.0.1:51820")])}
    second = {"n": (remote("n", hostname="new"), [ep("10.0.0.2:51820")])}
    raw = raw_affiliates([first, second])
    assert list(raw) == ["service/n"] and raw["service/n"].hostname == "new"


def test_merge_rules() -> None:
    base = AffiliateSpec(
        node_id="n", addresses=(ip("10.0.0.1"),), hostname="h-k8s", nodename="", machine_type="controlplane",
        operating_system="first-os", public_key="", endpoints=(ep("10.0.0.1:51820"),),
        additional_addresses=(ipaddress.ip_network("10.244.0.0/24"),), control_plane=ControlPlane(6443),
    )
    other = AffiliateSpec(
        node_id="n", addresses=(ip("10.0.0.2"), ip("10.0.0.1")), hostname="", nodename="node-n",
        machine_type="unknown", operating_system="second-os", public_key="pk", kubespan_address=ip("fd00::9"),
        endpoints=(ep("10.0.0.1:51820"), ep("10.0.0.2:51820")),
        additional_addresses=(ipaddress.ip_network("10.244.0.0/24"), ipaddress.ip_network("10.244.9.0/24")),
        exclude_advertised_networks=(ipaddress.ip_network("192.168.0.0/16"),), control_plane=None,
    )
    merged = merge({"service/n": other, "k8s/n": base, "service/m": AffiliateSpec(node_id="m")})
    assert sorted(merged) == ["m", "n"]
    n = merged["n"]
    assert n.addresses == (ip("10.0.0.1"), ip("10.0.0.2"))                        # union-append
    assert n.endpoints == (ep("10.0.0.1:51820"), ep("10.0.0.2:51820"))
    assert [str(p) for p in n.additional_addresses] == ["10.244.0.0/24", "10.244.9.0/24"]
    assert [str(p) for p in n.exclude_advertised_networks] == ["192.168.0.0/16"]
    assert n.hostname == "h-k8s"               # empty does not overwrite
    assert n.nodename == "node-n" and n.public_key == "pk" and n.kubespan_address == ip("fd00::9")
    assert n.machine_type == "controlplane"    # unknown does not overwrite
    assert n.operating_system == "first-os"    # the first one is kept
    assert n.control_plane == ControlPlane(6443)  # nil does not overwrite


def test_members_only_with_nodename() -> None:
    merged = {"a": AffiliateSpec(node_id="a", nodename="node-a", hostname="ha", machine_type="worker",
                                 operating_system="os", addresses=(ip("10.0.0.1"),)),
              "b": AffiliateSpec(node_id="b")}
    got = members(merged)
    assert list(got) == ["node-a"]
    m = got["node-a"]
    assert (m.id, m.node_id, m.hostname, m.machine_type, m.addresses) == ("node-a", "a", "ha", "worker",
                                                                          (ip("10.0.0.1"),))
