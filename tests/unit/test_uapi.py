"""wgpy.uapi: the set parser and the get serializer, against the real Device."""

from __future__ import annotations

import ipaddress
import os

import pytest

from wgpy.config import DeviceUpdate
from wgpy.device import Device
from wgpy.errors import UapiError
from wgpy.keys import PresharedKey, PrivateKey, PublicKey
from wgpy.uapi import EINVAL, EPROTO, parse_set, parse_uapi_endpoint, serialize_get, split_wall_time

NOW = 1000.0
ZERO = "0" * 64


def key(n: int) -> PrivateKey:
    return PrivateKey.generate(lambda size: bytes([n]) * size)


def pub(n: int) -> PublicKey:
    return key(n).public_key()


def new_device() -> Device:
    return Device(rng=os.urandom, wall_clock=lambda: 1_700_000_000.25, mtu=1420)


def apply(dev: Device, text: str) -> None:
    dev.apply(parse_set(text.strip().splitlines(), dev.public_key), NOW)


def get_lines(dev: Device) -> list[str]:
    return serialize_get(dev).splitlines()


# ------------------------------------------------------------------ set: device keys


def test_device_keys() -> None:
    upd = parse_set([f"private_key={key(1).to_hex()}", "listen_port=51820", "fwmark=4294967295",
                     "replace_peers=true"], None)
    assert upd.private_key == key(1)
    assert upd.listen_port == 51820 and upd.fwmark == 0xFFFFFFFF and upd.replace_peers


def test_hex_keys_accept_upper_case_and_zero_private_key_removes() -> None:
    dev = new_device()
    apply(dev, f"private_key={key(1).to_hex().upper()}")
    assert dev.private_key == key(1)
    apply(dev, f"private_key={ZERO}")
    assert dev.private_key is None
    assert not any(line.startswith("private_key=") for line in get_lines(dev))


@pytest.mark.parametrize("line", [
    "listen_port=65536", "listen_port=-1", "listen_port=+1", "listen_port=", "listen_port=0x10",
    "listen_port= 1", "fwmark=4294967296", "fwmark=abc", "replace_peers=false", "replace_peers=1",
    "private_key=" + "0" * 63, "private_key=" + "g" * 64, "private_key=" + "A" * 44,
    "bogus=1", "public_key_x=1", "endpoint=1.2.3.4:5",
])
def test_bad_device_lines_are_einval(line: str) -> None:
    with pytest.raises(UapiError) as exc:
        parse_set([line], None)
    assert exc.value.errno == EINVAL


def test_line_without_equals_is_eproto() -> None:
    with pytest.raises(UapiError) as exc:
        parse_set(["listen_port=1", "garbage"], None)
    assert exc.value.errno == EPROTO


# ------------------------------------------------------------------ set: peer keys


def test_every_peer_key() -> None:
    psk = PresharedKey(bytes(range(32)))
    upd = parse_set([
        f"public_key={pub(2).to_hex()}", "protocol_version=1", f"preshared_key={psk.to_hex()}",
        "endpoint=[fd00::1%eth0]:51820", "persistent_keepalive_interval=25", "replace_allowed_ips=true",
        "allowed_ip=10.0.0.1/24", "allowed_ip=fd00::/64", "allowed_ip=-192.168.0.0/16", "update_only=true",
    ], None)
    (peer,) = upd.peers
    assert peer.public_key == pub(2) and peer.preshared_key == psk
    assert peer.endpoint == ("fd00::1", 51820) and peer.persistent_keepalive == 25
    assert peer.replace_allowed_ips and peer.update_only and not peer.remove
    assert peer.allowed_ips == [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]
    assert peer.remove_allowed_ips == [ipaddress.ip_network("192.168.0.0/16")]


@pytest.mark.parametrize("line", [
    "endpoint=1.2.3.4", "endpoint=host.example:51820", "endpoint=fd00::1:51820", "endpoint=1.2.3.4:0",
    "endpoint=1.2.3.4:65536", "endpoint=[1.2.3.4]:5", "allowed_ip=10.0.0.1", "allowed_ip=10.0.0.0/33",
    "allowed_ip=fd00::/129", "allowed_ip=10.0.0.0/+8", "allowed_ip=10.0.0.0/24 ", "allowed_ip=010.0.0.0/8",
    "persistent_keepalive_interval=65536", "protocol_version=2", "remove=false", "update_only=yes",
    "replace_allowed_ips=True", "preshared_key=xyz", "listen_port=1", "private_key=" + ZERO,
])
def test_bad_peer_lines_are_einval(line: str) -> None:
    with pytest.raises(UapiError) as exc:
        parse_set([f"public_key={pub(2).to_hex()}", line], None)
    assert exc.value.errno == EINVAL


def test_endpoint_unmaps_v4_mapped() -> None:
    assert parse_uapi_endpoint("[::ffff:10.1.2.3]:7") == ("10.1.2.3", 7)


def test_own_public_key_is_a_dummy_peer() -> None:
    upd = parse_set([f"public_key={pub(1).to_hex()}", "allowed_ip=10.0.0.0/8"], pub(1))
    assert upd.peers == []
    # a private key set earlier in the same transaction decides
    upd = parse_set([f"private_key={key(3).to_hex()}", f"public_key={pub(3).to_hex()}",
                     f"public_key={pub(1).to_hex()}"], pub(1))
    assert [p.public_key for p in upd.peers] == [pub(1)]


def test_remove_ignores_rest_of_section() -> None:
    upd = parse_set([f"public_key={pub(2).to_hex()}", "allowed_ip=10.0.0.0/8", "remove=true",
                     "endpoint=1.2.3.4:5"], None)
    (peer,) = upd.peers
    assert peer.remove and peer.allowed_ips == [] and peer.endpoint is None
    with pytest.raises(UapiError):  # lines after remove are still validated
        parse_set([f"public_key={pub(2).to_hex()}", "remove=true", "endpoint=bad"], None)


def test_add_then_remove_same_prefix_cancels() -> None:
    upd = parse_set([f"public_key={pub(2).to_hex()}", "allowed_ip=10.0.0.0/8", "allowed_ip=-10.0.0.0/8"], None)
    assert upd.peers[0].allowed_ips == []


# ------------------------------------------------------------------ applied to a Device


def test_get_order_and_values() -> None:
    dev = new_device()
    apply(dev, f"""
private_key={key(1).to_hex()}
listen_port=51820
fwmark=32
public_key={pub(2).to_hex()}
preshared_key={PresharedKey(bytes(range(32))).to_hex()}
endpoint=10.0.0.2:51821
persistent_keepalive_interval=25
allowed_ip=10.1.0.0/16
allowed_ip=fd00::/64
public_key={pub(3).to_hex()}
""")
    assert get_lines(dev) == [
        f"private_key={key(1).to_hex()}", "listen_port=51820", "fwmark=32",
        f"public_key={pub(2).to_hex()}", f"preshared_key={PresharedKey(bytes(range(32))).to_hex()}",
        "protocol_version=1", "endpoint=10.0.0.2:51821", "last_handshake_time_sec=0",
        "last_handshake_time_nsec=0", f"tx_bytes={dev.peers()[0].tx_bytes}", "rx_bytes=0",
        "persistent_keepalive_interval=25", "allowed_ip=10.1.0.0/16", "allowed_ip=fd00::/64",
        f"public_key={pub(3).to_hex()}", f"preshared_key={ZERO}", "protocol_version=1",
        "last_handshake_time_sec=0", "last_handshake_time_nsec=0", "tx_bytes=0", "rx_bytes=0",
        "persistent_keepalive_interval=0",
    ]


def test_empty_device_get_is_empty() -> None:
    assert serialize_get(new_device()) == ""


def test_ipv6_endpoint_in_brackets() -> None:
    dev = new_device()
    apply(dev, f"public_key={pub(2).to_hex()}\nendpoint=[fd00::2]:9")
    assert "endpoint=[fd00::2]:9" in get_lines(dev)


def test_replace_peers_remove_update_only_replace_allowed_ips() -> None:
    dev = new_device()
    apply(dev, f"private_key={key(1).to_hex()}\npublic_key={pub(2).to_hex()}\nallowed_ip=10.2.0.0/16\n"
               f"public_key={pub(3).to_hex()}\nallowed_ip=10.3.0.0/16\nallowed_ip=10.4.0.0/16")
    apply(dev, f"public_key={pub(3).to_hex()}\nallowed_ip=-10.3.0.0/16")
    assert dev.peer(pub(3)).allowed_ips() == [ipaddress.ip_network("10.4.0.0/16")]  # type: ignore[union-attr]
    apply(dev, f"public_key={pub(3).to_hex()}\nreplace_allowed_ips=true\nallowed_ip=10.5.0.0/16")
    assert dev.peer(pub(3)).allowed_ips() == [ipaddress.ip_network("10.5.0.0/16")]  # type: ignore[union-attr]
    apply(dev, f"public_key={pub(4).to_hex()}\nupdate_only=true\nallowed_ip=10.6.0.0/16")
    assert dev.peer(pub(4)) is None
    apply(dev, f"public_key={pub(2).to_hex()}\nupdate_only=true\npersistent_keepalive_interval=7")
    assert dev.peer(pub(2)).persistent_keepalive == 7  # type: ignore[union-attr]
    apply(dev, f"public_key={pub(2).to_hex()}\nremove=true")
    assert [p.public_key for p in dev.peers()] == [pub(3)]
    apply(dev, f"replace_peers=true\npublic_key={pub(5).to_hex()}")
    assert [p.public_key for p in dev.peers()] == [pub(5)]


def test_zero_preshared_key_removes_it() -> None:
    dev = new_device()
    psk = PresharedKey(bytes([7]) * 32)
    apply(dev, f"public_key={pub(2).to_hex()}\npreshared_key={psk.to_hex()}")
    assert dev.peer(pub(2)).preshared_key == psk  # type: ignore[union-attr]
    apply(dev, f"public_key={pub(2).to_hex()}\npreshared_key={ZERO}")
    assert dev.peer(pub(2)).preshared_key is None  # type: ignore[union-attr]


def test_failed_set_changes_nothing() -> None:
    dev = new_device()
    apply(dev, f"private_key={key(1).to_hex()}\nlisten_port=1\npublic_key={pub(2).to_hex()}\nallowed_ip=10.2.0.0/16")
    before = serialize_get(dev)
    bad = [f"private_key={key(9).to_hex()}", "replace_peers=true", f"public_key={pub(3).to_hex()}",
           "allowed_ip=10.2.0.0/16", "endpoint=nope"]
    with pytest.raises(UapiError):
        apply(dev, "\n".join(bad))
    assert serialize_get(dev) == before


def test_handshake_time_split() -> None:
    assert split_wall_time(None) == (0, 0)
    assert split_wall_time(1_700_000_000.5) == (1_700_000_000, 500_000_000)


def test_update_object_is_a_device_update() -> None:
    assert isinstance(parse_set([], None), DeviceUpdate)
