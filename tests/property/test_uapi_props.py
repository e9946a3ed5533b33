"""Properties of wgpy.uapi: garbage only ever raises UapiError, a failed set
changes nothing, and get output re-applied as a set reproduces the device."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from wgpy.device import Device
from wgpy.errors import ConfigError, UapiError
from wgpy.keys import PrivateKey
from wgpy.uapi import parse_set, serialize_get

KEYS = ["private_key", "listen_port", "fwmark", "replace_peers", "public_key", "preshared_key", "endpoint",
        "persistent_keepalive_interval", "replace_allowed_ips", "allowed_ip", "protocol_version", "remove",
        "update_only", "last_handshake_time_sec", "tx_bytes", "bogus"]

hexkey = st.binary(min_size=32, max_size=32).map(bytes.hex)
values = st.one_of(
    hexkey, st.integers(-5, 2**33).map(str), st.sampled_from(["true", "false", "", "1", "0" * 64]),
    st.ip_addresses().map(str).flatmap(lambda ip: st.sampled_from(
        [ip, f"{ip}:51820", f"[{ip}]:1", f"{ip}/24", f"-{ip}/8", f"{ip}/200"])),
    st.text(max_size=30),
)
shaped_line = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), values)
garbage_line = st.text(max_size=80)
transaction = st.lists(st.one_of(shaped_line, garbage_line), max_size=25)

small_key = st.integers(2, 6).map(lambda n: PrivateKey(bytes([n]) * 32).public_key().to_hex())
v4net = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: f"{(t[0] >> 24) & 255}.{(t[0] >> 16) & 255}.{(t[0] >> 8) & 255}.{t[0] & 255}/{t[1]}")
valid_peer_line = st.one_of(
    v4net.map(lambda n: f"allowed_ip={n}"), v4net.map(lambda n: f"allowed_ip=-{n}"),
    st.integers(0, 65535).map(lambda n: f"persistent_keepalive_interval={n}"),
    st.integers(1, 65535).map(lambda p: f"endpoint=10.1.2.3:{p}"),
    hexkey.map(lambda k: f"preshared_key={k}"),
    st.sampled_from(["replace_allowed_ips=true", "remove=true", "update_only=true", "protocol_version=1"]),
)
valid_transaction = st.lists(
    st.tuples(small_key, st.lists(valid_peer_line, max_size=6)), max_size=5,
).map(lambda secs: [line for k, body in secs for line in [f"public_key={k}", *body]])


def fresh() -> Device:
    return Device(rng=os.urandom, wall_clock=lambda: 1_700_000_000.0, mtu=1420)


BASE = PrivateKey(bytes([1]) * 32)
PEER = PrivateKey(bytes([2]) * 32).public_key()


def configured() -> Device:
    dev = fresh()
    dev.apply(parse_set([f"private_key={BASE.to_hex()}", "listen_port=4000", "fwmark=7",
                         f"public_key={PEER.to_hex()}", "endpoint=10.0.0.2:5", "allowed_ip=10.9.0.0/16",
                         "allowed_ip=fd00:9::/64"], None), 0.0)
    return dev


@given(transaction)
def test_any_input_parses_or_raises_uapi_error(lines: list[str]) -> None:
    try:
        parse_set(lines, None)
    except UapiError as exc:
        assert exc.errno > 0


@given(transaction)
def test_set_is_atomic(lines: list[str]) -> None:
    dev = configured()
    before = serialize_get(dev)
    try:
        update = parse_set(lines, dev.public_key)
    except UapiError:
        assert serialize_get(dev) == before
        return
    try:
        dev.apply(update, 1.0)
    except ConfigError:
        assert serialize_get(dev) == before


SET_KEYS = ("private_key", "listen_port", "fwmark", "public_key", "preshared_key", "endpoint",
            "persistent_keepalive_interval", "allowed_ip", "protocol_version")


@given(st.one_of(transaction, valid_transaction))
def test_get_reapplied_reproduces_device(lines: list[str]) -> None:
    dev = configured()
    try:
        dev.apply(parse_set(lines, dev.public_key), 1.0)
    except (UapiError, ConfigError):
        pass
    text = serialize_get(dev)
    replay = [line for line in text.splitlines() if line.split("=", 1)[0] in SET_KEYS]
    copy = fresh()
    copy.apply(parse_set(replay, None), 1.0)
    strip = ("tx_bytes", "rx_bytes", "last_handshake")
    assert [x for x in serialize_get(copy).splitlines() if not x.startswith(strip)] == \
           [x for x in text.splitlines() if not x.startswith(strip)]
