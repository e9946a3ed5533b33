"""The pure parts of the etcd backend: key layout, record codec, endpoint URLs, range ends.

Whatever sits under the prefix (another program's keys, corrupt values) is a
typed error or a skip, never a crash; IDs round-trip through keys whatever
characters they hold.  Hypothesis property tests; no etcd needed.
"""

from __future__ import annotations


import pytest
from discovery_support import parse_or_usage
from hypothesis import given, settings
from hypothesis import strategies as st

from kubespan.discovery import limits
from kubespan.discovery.command import config_from_args
from kubespan.discovery.errors import LimitError
from kubespan.discovery.etcd import endpoints_arg, parse_endpoint, range_end
from kubespan.discovery.etcdstate import Keys, decode_affiliate, encode_affiliate
from kubespan.discovery.record import Affiliate

IDS = st.text(min_size=1, max_size=limits.AFFILIATE_ID_MAX)


def keys() -> Keys:
    return Keys("/p/")


@given(IDS, IDS)
def test_ids_round_trip_through_keys(cluster_id: str, affiliate_id: str) -> None:
    k = keys()
    key = k.key(cluster_id, affiliate_id)
    assert k.parse(key) == (cluster_id, affiliate_id)
    # a cluster's keys all sit under its prefix, and no other cluster's do
    assert key.startswith(k.cluster_prefix(cluster_id))
    assert not k.key(cluster_id + "/x", affiliate_id).startswith(k.cluster_prefix(cluster_id))


@given(st.binary(max_size=300))
def test_any_key_parses_or_is_skipped(key: bytes) -> None:
    parsed = keys().parse(b"/p/c/" + key)
    assert parsed is None or all(isinstance(x, str) for x in parsed)


@given(st.binary(max_size=3000))
def test_any_value_decodes_or_is_a_typed_error(value: bytes) -> None:
    try:
        aff = decode_affiliate("n", value)
    except (ValueError, LimitError):
        return
    assert len(aff.data) <= limits.AFFILIATE_DATA_MAX
    assert len(aff.endpoints) <= limits.AFFILIATE_ENDPOINTS_MAX


@given(st.binary(max_size=limits.AFFILIATE_DATA_MAX),
       st.floats(min_value=0, max_value=4e9),
       st.dictionaries(st.binary(max_size=limits.AFFILIATE_ENDPOINT_MAX), st.floats(min_value=0, max_value=4e9),
                       max_size=limits.AFFILIATE_ENDPOINTS_MAX))
def test_records_round_trip(data: bytes, expiration: float, endpoints: dict[bytes, float]) -> None:
    aff = Affiliate("n", data, expiration, endpoints)
    back = decode_affiliate("n", encode_affiliate(aff))
    assert back.view() == aff.view()
    assert abs(back.expiration - expiration) < 1e-6
    assert all(abs(back.endpoints[b] - e) < 1e-6 for b, e in endpoints.items())


@pytest.mark.parametrize("url,target,tls", [
    ("http://10.0.0.1:2379", "10.0.0.1:2379", False),
    ("https://etcd.example:2379", "etcd.example:2379", True),
    ("10.0.0.1:2379", "10.0.0.1:2379", False),
    ("https://[fd00::1]:2379", "[fd00::1]:2379", True),
    ("http://etcd", "etcd:2379", False),
])
def test_endpoint_urls(url: str, target: str, tls: bool) -> None:
    assert parse_endpoint(url) == (target, tls)


@given(st.text(max_size=80))
def test_any_endpoint_list_parses_or_is_a_value_error(text: str) -> None:
    try:
        urls = endpoints_arg(text)
    except ValueError:
        return
    assert urls and all(parse_endpoint(u) for u in urls)


@given(st.binary(max_size=20))
def test_range_end_covers_exactly_the_prefix(prefix: bytes) -> None:
    end = range_end(prefix)
    if prefix.strip(b"\xff") == b"":
        assert end == b"\0"  # etcd: every key from prefix on
        return
    assert prefix < end
    assert prefix + b"\xff" * 8 < end
    assert not end.startswith(prefix)


ETCD_TOKENS = st.sampled_from([
    "--etcd-endpoints", "http://127.0.0.1:2379", "a:1,b:2", ",", "ftp://x", "--etcd-prefix", "",
    "--etcd-cacert", "--etcd-cert", "--etcd-key", "--etcd-user", "u", "--etcd-password-file", "/nonexistent",
    "--etcd-timeout", "0", "1s", "-addr", ":0",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ETCD_TOKENS, st.text(max_size=6)), max_size=7))
def test_any_etcd_arguments_parse_or_exit_with_usage(argv: list[str]) -> None:
    args = parse_or_usage(argv)
    if args is None:
        return
    try:
        config = config_from_args(args)
    except (OSError, ValueError):  # the password file or variable: main reports it, exit 1
        assert args.etcd_user is not None
        return
    assert (config.etcd is None) == (args.etcd_endpoints is None)
    if config.etcd is not None:
        assert config.etcd.endpoints and config.etcd.timeout > 0
        assert (config.etcd.cert_file is None) == (config.etcd.key_file is None)
