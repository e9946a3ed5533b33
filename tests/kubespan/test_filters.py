"""Endpoint filters: kubespan.md §5 examples and siderolabs/net FilterIPs cases."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubespan.errors import ConfigError
from kubespan.filters import IPAddress, filter_ips, parse_prefix, parse_rule, parse_subnet_or_address, validate_rules


def ips(*texts: str) -> list[IPAddress]:
    return [ipaddress.ip_address(t) for t in texts]


NODE_IPS = ips("192.168.1.10", "2001:db8::1", "10.0.0.5", "fd00::5", "192.168.2.20", "172.16.0.1")


# The siderolabs/net TestFilterIPs table (net_test.go), verbatim inputs and outputs.
@pytest.mark.parametrize(
    ("addrs", "rules", "expected"),
    [
        (["10.3.4.6", "2001:db8::1"], ["0.0.0.0/0", "::/0"], ["10.3.4.6", "2001:db8::1"]),
        (["10.3.4.6", "10.3.4.1", "172.20.0.1"], ["10.0.0.0/8", "!10.3.4.1/32"], ["10.3.4.6"]),
        (["10.3.4.6", "10.3.4.1", "172.20.0.1"], ["10.0.0.0/8", "!10.3.4.1"], ["10.3.4.6"]),
        (["10.3.4.6", "172.20.0.1"], ["10.0.0.0/8", "0.0.0.0/0"], ["10.3.4.6", "172.20.0.1"]),
    ],
)
def test_upstream_table(addrs: list[str], rules: list[str], expected: list[str]) -> None:
    assert filter_ips(ips(*addrs), rules) == ips(*expected)


def test_spec_example_excludes_192_168_and_groups_v4_before_v6() -> None:
    got = filter_ips(NODE_IPS, ["0.0.0.0/0", "!192.168.0.0/16", "::/0"])
    assert got == ips("10.0.0.5", "172.16.0.1", "2001:db8::1", "fd00::5")


def test_order_matters_negation_only_removes_what_was_added_before() -> None:
    # The negation runs before 0.0.0.0/0 adds the 192.168 addresses back.
    got = filter_ips(NODE_IPS, ["!192.168.0.0/16", "0.0.0.0/0", "::/0"])
    assert got == ips("192.168.1.10", "10.0.0.5", "192.168.2.20", "172.16.0.1", "2001:db8::1", "fd00::5")


def test_output_is_grouped_by_rule_not_by_input_order() -> None:
    got = filter_ips(NODE_IPS, ["::/0", "0.0.0.0/0"])
    assert got == ips("2001:db8::1", "fd00::5", "192.168.1.10", "10.0.0.5", "192.168.2.20", "172.16.0.1")


def test_doc_example_equals_no_filtering_apart_from_order() -> None:
    got = filter_ips(NODE_IPS, ["0.0.0.0/0", "::/0"])
    assert sorted(got, key=str) == sorted(NODE_IPS, key=str)
    assert got != NODE_IPS  # the order differs: all IPv4 first


def test_none_means_no_filtering_and_keeps_order_and_duplicates() -> None:
    addrs = NODE_IPS + ips("10.0.0.5")
    assert filter_ips(addrs, None) == addrs


def test_empty_rule_list_drops_everything() -> None:
    assert filter_ips(NODE_IPS, []) == []


def test_duplicates_in_input_are_added_once() -> None:
    assert filter_ips(ips("10.0.0.1", "10.0.0.1"), ["10.0.0.0/8"]) == ips("10.0.0.1")


def test_unmasked_cidr_is_masked() -> None:
    assert filter_ips(ips("10.9.9.9", "11.0.0.1"), ["10.3.4.6/8"]) == ips("10.9.9.9")


def test_families_never_cross() -> None:
    # An IPv4-mapped IPv6 address is IPv6: ::/0 takes it, 0.0.0.0/0 does not.
    mapped = ips("::ffff:10.0.0.1")
    assert filter_ips(mapped, ["0.0.0.0/0"]) == []
    assert filter_ips(mapped, ["::/0"]) == mapped
    assert filter_ips(ips("10.0.0.1"), ["::/0"]) == []


def test_zoned_address_never_matches() -> None:
    zoned = [ipaddress.IPv6Address("fe80::1%eth0")]
    assert filter_ips(zoned, ["::/0"]) == []


@pytest.mark.parametrize(
    "rule",
    ["10", "123::/456", "1.2.3.4/33", "1.2.3.4/08", "1.2.3.4/+8", "1.2.3.4/-1", "010.1.1.1", "1.2.3", "",
     "!", "!!10.0.0.0/8", "fe80::1%", "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/255.0.0.0", "::/0/0",
     "١.٢.٣.٤", "[::1]"],
)
def test_invalid_rules_raise_config_error_naming_the_rule(rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        filter_ips(NODE_IPS, [rule])
    assert repr(rule) in str(info.value)


@pytest.mark.parametrize(
    ("rule", "positive", "network"),
    [
        ("10.0.0.0/8", True, "10.0.0.0/8"),
        ("!192.168.0.0/16", False, "192.168.0.0/16"),
        ("10.3.4.1", True, "10.3.4.1/32"),
        ("!2001:db8::1", False, "2001:db8::1/128"),
        ("::ffff:1.2.3.4", True, "::ffff:1.2.3.4/128"),
        ("0.0.0.0/0", True, "0.0.0.0/0"),
        ("fe80::1%eth0", True, "fe80::1/128"),  # netip.PrefixFrom drops the zone of a bare IP
    ],
)
def test_parse_rule(rule: str, positive: bool, network: str) -> None:
    assert parse_rule(rule) == (positive, ipaddress.ip_network(network))


def test_prefix_with_zone_falls_back_to_a_bare_ip_like_go() -> None:
    # netip.ParsePrefix rejects the zone; netip.ParseAddr then takes
    # "eth0/64" as the zone, so ParseSubnetOrAddress yields fe80::/128.
    with pytest.raises(ValueError):
        parse_prefix("fe80::%eth0/64")
    assert parse_subnet_or_address("fe80::%eth0/64") == ipaddress.ip_network("fe80::/128")
    assert parse_subnet_or_address("fe80::1%eth0") == ipaddress.ip_network("fe80::1/128")


def test_validate_rules_names_the_index() -> None:
    with pytest.raises(ConfigError) as info:
        validate_rules(["0.0.0.0/0", "!nope"], "machine.network.kubespan.filters.endpoints")
    assert info.value.path == "machine.network.kubespan.filters.endpoints[1]"
    assert "'!nope'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_rules("0.0.0.0/0", "x.endpoints")
    assert info.value.path == "x.endpoints"
    with pytest.raises(ConfigError):
        validate_rules([1], "x")


def naive_filter(addrs: list[IPAddress], rules: list[str]) -> list[IPAddress]:
    """A literal model: per address, the last matching rule decides, except
    that an address is placed at the first positive rule that (re)adds it
    after its latest removal."""
    result: list[IPAddress] = []
    for rule in rules:
        positive, net = parse_rule(rule)
        for addr in addrs:
            inside = addr.version == net.version and addr in net
            if inside and positive and addr not in result:
                result.append(addr)
            elif inside and not positive and addr in result:
                result.remove(addr)
    return result


PREFIXES = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/24", "192.168.0.0/16", "::/0", "fd00::/8", "2001:db8::/32",
            "10.0.0.5", "2001:db8::1"]
rule_strategy = st.builds(lambda neg, p: ("!" if neg else "") + p, st.booleans(), st.sampled_from(PREFIXES))
addr_strategy = st.sampled_from(ips("10.0.0.5", "10.0.1.5", "192.168.1.1", "8.8.8.8", "fd00::1", "2001:db8::1",
                                    "2001:db9::1", "::ffff:10.0.0.5"))


@settings(max_examples=200, deadline=None)
@given(st.lists(addr_strategy, max_size=8), st.lists(rule_strategy, max_size=6))
def test_filter_matches_naive_model(addrs: list[IPAddress], rules: list[str]) -> None:
    got = filter_ips(addrs, rules)
    assert got == naive_filter(addrs, rules)
    assert len(set(got)) == len(got)
    assert set(got) <= set(addrs)
