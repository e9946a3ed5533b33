"""protocol.py: payload model, AES-256-GCM affiliate data, AES-ECB endpoints (§3.2, §3.3)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from kubespan.discovery import protocol
from kubespan.discovery.errors import DiscoveryPayloadError
from kubespan.discovery.proto import affiliate_pb2
from kubespan.discovery.protocol import Affiliate, ControlPlane, Endpoint, KubeSpan

KEY = bytes(range(32))
NONCE = bytes.fromhex("000102030405060708090a0b")


def test_endpoint_plaintext_matches_spec_example() -> None:
    # spec §3.3: 10.0.0.2:51820 -> 0a 0a040a000002 10ec9403 + 5 x 00
    ep = Endpoint(ipaddress.ip_address("10.0.0.2"), 51820)
    assert protocol.encode_endpoint(ep) == bytes.fromhex("0a0a040a00000210ec9403") + bytes(5)


def test_endpoint_ecb_is_raw_aes_of_the_plaintext() -> None:
    ep = Endpoint(ipaddress.ip_address("10.0.0.2"), 51820)
    blob = protocol.seal_endpoint(KEY, ep)
    enc = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor()
    assert blob == enc.update(bytes.fromhex("0a0a040a00000210ec9403") + bytes(5)) + enc.finalize()
    assert len(blob) == 16
    assert protocol.open_endpoint(KEY, blob) == ep
    # deterministic: the server can deduplicate the same endpoint from different nodes
    assert protocol.seal_endpoint(KEY, ep) == blob


def test_ipv6_endpoint_is_two_blocks() -> None:
    ep = Endpoint(ipaddress.ip_address("2001:db8::1"), 51820)
    blob = protocol.seal_endpoint(KEY, ep)
    assert len(blob) == 32
    assert protocol.open_endpoint(KEY, blob) == ep


# Hand-built protobuf of Affiliate{node_id="n1", addresses=[192.168.3.4],
# hostname="foo.com", machine_type="controlplane", kubespan{public_key="pk",
# address=fd00::1, additional_addresses=[10.244.3.1/24]}, control_plane{6443}}.
HAND_PLAINTEXT = bytes.fromhex(
    "0a026e31"                      # 1: node_id "n1"
    "1204c0a80304"                  # 2: address 192.168.3.4
    "1a07666f6f2e636f6d"            # 3: hostname "foo.com"
    "2a0c636f6e74726f6c706c616e65"  # 5: machine_type "controlplane"
    "3a20"                          # 7: kubespan, 32 bytes
    "0a02706b"                      #    1: public_key "pk"
    "1210fd000000000000000000000000000001"  # 2: address fd00::1
    "1a08" "0a040af40301" "1018"    #    3: IPPrefix{ip=10.244.3.1, bits=24}
    "4203" "08ab32"                 # 8: control_plane{api_server_port=6443}
)

HAND_AFFILIATE = Affiliate(
    node_id="n1",
    addresses=(ipaddress.ip_address("192.168.3.4"),),
    hostname="foo.com",
    machine_type="controlplane",
    kubespan=KubeSpan(
        public_key="pk",
        address=ipaddress.ip_address("fd00::1"),
        additional_addresses=(ipaddress.ip_interface("10.244.3.1/24"),),
    ),
    control_plane=ControlPlane(6443),
)


def test_affiliate_protobuf_matches_hand_encoding() -> None:
    assert protocol.encode_affiliate(HAND_AFFILIATE) == HAND_PLAINTEXT
    assert protocol.decode_affiliate(HAND_PLAINTEXT) == HAND_AFFILIATE


def test_fixed_nonce_affiliate_encryption() -> None:
    blob = protocol.seal_affiliate(KEY, HAND_AFFILIATE, NONCE)
    assert blob[:12] == NONCE
    assert len(blob) == 12 + len(HAND_PLAINTEXT) + 16
    # nonce || AES-256-GCM(ciphertext || tag), no AAD
    assert AESGCM(KEY).decrypt(NONCE, blob[12:], None) == HAND_PLAINTEXT
    assert blob.hex() == PINNED_SEALED
    assert protocol.open_affiliate(KEY, blob) == HAND_AFFILIATE


# key 00..1f, nonce 00..0b, plaintext HAND_PLAINTEXT (computed once, pinned).
PINNED_SEALED = (
    "000102030405060708090a0b"
    "4d00b82ad7e102b38e458d8cd7861743e0b9ea1efc1830124c158ae96d0561dc642a8ef6adb1798a"
    "64597fed88872838ee59608d5ad6a3da3e8d22131ce901edf12cde38d0d98d53ae29fbcc5ab816c4"
    "a9dba945a6ddf45e"
)


def test_prefix_ip_is_sent_unmasked() -> None:
    msg = protocol.affiliate_to_pb(HAND_AFFILIATE)
    assert msg.kubespan.additional_addresses[0].ip == bytes([10, 244, 3, 1])


def test_kubespan_omitted_without_public_key() -> None:
    aff = Affiliate(node_id="x", kubespan=KubeSpan(public_key=""))
    assert not protocol.affiliate_to_pb(aff).HasField("kubespan")


def test_exclude_advertised_networks_round_trip() -> None:
    aff = Affiliate(
        node_id="x",
        kubespan=KubeSpan(
            public_key="k", exclude_advertised_networks=(ipaddress.ip_interface("0.0.0.0/0"),)
        ),
    )
    assert protocol.open_affiliate(KEY, protocol.seal_affiliate(KEY, aff, NONCE)) == aff


def test_machine_type_normalization() -> None:
    assert protocol.normalize_machine_type("join") == "worker"
    assert protocol.normalize_machine_type("") == "worker"
    assert protocol.normalize_machine_type("controlplane") == "controlplane"
    assert protocol.normalize_machine_type("bogus") == "unknown"


def test_key_from_secret() -> None:
    import base64

    assert protocol.key_from_secret(base64.b64encode(KEY).decode()) == KEY
    with pytest.raises(ValueError):
        protocol.key_from_secret(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError):
        protocol.key_from_secret("not base64!!")


def _gcm(plain: bytes) -> bytes:
    return NONCE + AESGCM(KEY).encrypt(NONCE, plain, None)


def _ecb(plain: bytes) -> bytes:
    enc = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor()
    return enc.update(plain) + enc.finalize()


@pytest.mark.parametrize(
    "blob, reason",
    [
        (b"", "too short"),
        (bytes(27), "too short"),
        (bytes(40), "authentication"),
        (_gcm(b"\xff\xff\xff"), "bad protobuf"),
        (_gcm(affiliate_pb2.Affiliate(node_id="a", addresses=[b"\x01\x02\x03"]).SerializeToString()), "4 or 16"),
        (_gcm(affiliate_pb2.Affiliate(control_plane=affiliate_pb2.ControlPlane(api_server_port=70000)).SerializeToString()), "port"),
        (_gcm(affiliate_pb2.Affiliate(kubespan=affiliate_pb2.KubeSpan(public_key="k", additional_addresses=[affiliate_pb2.IPPrefix(ip=bytes(4), bits=33)])).SerializeToString()), "prefix length"),
    ],
)
def test_bad_affiliate_data(blob: bytes, reason: str) -> None:
    with pytest.raises(DiscoveryPayloadError, match=reason):
        protocol.open_affiliate(KEY, blob)


def test_wrong_key_fails_authentication() -> None:
    blob = protocol.seal_affiliate(KEY, HAND_AFFILIATE, NONCE)
    with pytest.raises(DiscoveryPayloadError, match="authentication"):
        protocol.open_affiliate(bytes(32), blob)


@pytest.mark.parametrize(
    "blob, reason",
    [
        (b"", "multiple of 16"),
        (bytes(15), "multiple of 16"),
        (bytes(17), "multiple of 16"),
        (_ecb(bytes([16]) + bytes(15)), "length byte"),
        (_ecb(bytes([3, 0x0A, 0x01, 0x01]) + bytes(12)), "4 or 16"),
        (_ecb(bytes([2, 0xFF, 0xFF]) + bytes(13)), "bad protobuf"),
        (_ecb(bytes([10]) + bytes.fromhex("0a040a00000210ffff04") + bytes(5)), "port"),
    ],
)
def test_bad_endpoint(blob: bytes, reason: str) -> None:
    with pytest.raises(DiscoveryPayloadError, match=reason):
        protocol.open_endpoint(KEY, blob)


def test_key_length_is_checked() -> None:
    with pytest.raises(ValueError):
        protocol.seal_affiliate(b"short", HAND_AFFILIATE, NONCE)
    with pytest.raises(ValueError):
        protocol.seal_affiliate(KEY, HAND_AFFILIATE, b"short")


# --- properties ---------------------------------------------------------------


@given(st.binary(max_size=300))
def test_open_affiliate_raises_only_payload_errors(data: bytes) -> None:
    try:
        protocol.open_affiliate(KEY, data)
    except DiscoveryPayloadError:
        pass


@given(st.binary(max_size=300))
def test_decode_affiliate_plaintext_raises_only_payload_errors(data: bytes) -> None:
    try:
        protocol.decode_affiliate(data)
    except DiscoveryPayloadError:
        pass


@given(st.binary(max_size=64))
def test_open_endpoint_raises_only_payload_errors(data: bytes) -> None:
    for fn in (protocol.open_endpoint, lambda k, d: protocol.decode_endpoint(d)):
        try:
            fn(KEY, data)
        except DiscoveryPayloadError:
            pass


ips = st.one_of(
    st.ip_addresses(v=4).map(lambda a: ipaddress.ip_address(a.packed)),
    st.ip_addresses(v=6).map(lambda a: ipaddress.ip_address(a.packed)),
)


@st.composite
def prefixes(draw: st.DrawFn) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    ip = draw(ips)
    return ipaddress.ip_interface((ip, draw(st.integers(0, ip.max_prefixlen))))


text = st.text(max_size=40)
affiliates = st.builds(
    Affiliate,
    node_id=text,
    addresses=st.lists(ips, max_size=4).map(tuple),
    hostname=text,
    nodename=text,
    machine_type=st.sampled_from(["controlplane", "worker", "init", "unknown", ""]),
    operating_system=text,
    kubespan=st.one_of(
        st.none(),
        st.builds(
            KubeSpan,
            public_key=st.text(min_size=1, max_size=44),
            address=st.one_of(st.none(), ips),
            additional_addresses=st.lists(prefixes(), max_size=3).map(tuple),
            exclude_advertised_networks=st.lists(prefixes(), max_size=3).map(tuple),
        ),
    ),
    control_plane=st.one_of(st.none(), st.builds(ControlPlane, st.integers(0, 65535))),
)


@given(affiliates, st.binary(min_size=12, max_size=12))
def test_affiliate_round_trip(aff: Affiliate, nonce: bytes) -> None:
    assert protocol.open_affiliate(KEY, protocol.seal_affiliate(KEY, aff, nonce)) == aff


@given(ips, st.integers(0, 65535))
def test_endpoint_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    ep = Endpoint(ip, port)
    blob = protocol.seal_endpoint(KEY, ep)
    assert len(blob) == (16 if ip.version == 4 else 32)
    assert protocol.open_endpoint(KEY, blob) == ep
