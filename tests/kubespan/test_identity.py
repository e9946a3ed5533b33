"""Node identity: the kubespan.md §1 vector, EUI-64, MAC choice, persistence, base62."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import stat
from pathlib import Path

import pytest
import yaml

from kubespan import base62
from kubespan.errors import IdentityError
from kubespan.identity import (
    Identity,
    atomic_write,
    eui64_interface_id,
    first_ethernet_mac,
    is_ula,
    load_identity,
    load_or_create_node_id,
    load_or_create_private_key,
    machine_id,
    node_address,
    parse_mac,
    ula_prefix,
)
from wgpy.keys import PrivateKey

VECTOR_CLUSTER_ID = "8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo="
VECTOR_MAC = "2e:1a:b6:53:81:69"


class SeededRng:
    """Deterministic rng: SHA-256 counter stream."""

    def __init__(self, seed: bytes = b"seed") -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.calls += 1
            out += hashlib.sha256(self.seed + self.calls.to_bytes(8, "big")).digest()
        return out[:n]


# --- addresses ----------------------------------------------------------------


def test_spec_vector() -> None:
    assert ula_prefix(VECTOR_CLUSTER_ID) == ipaddress.IPv6Network("fd7f:175a:b97c:5602::/64")
    addr = node_address(VECTOR_CLUSTER_ID, parse_mac(VECTOR_MAC))
    assert addr == ipaddress.IPv6Address("fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169")
    assert addr in ula_prefix(VECTOR_CLUSTER_ID)
    assert is_ula(addr, 0x02) and not is_ula(addr, 0x03)


def test_ula_purposes_and_the_id_is_hashed_not_decoded() -> None:
    assert ula_prefix(VECTOR_CLUSTER_ID, 0x03).network_address.packed[7] == 0x03
    # A different spelling of the same bytes (URL vs std base64) is a different cluster.
    std = VECTOR_CLUSTER_ID.replace("_", "/").replace("-", "+")
    assert ula_prefix(std) != ula_prefix(VECTOR_CLUSTER_ID)
    assert not is_ula(ipaddress.IPv4Address("10.0.0.1"), 0x02)


def test_eui64() -> None:
    assert eui64_interface_id(bytes.fromhex("2e1ab6538169")) == bytes.fromhex("2c1ab6fffe538169")
    assert eui64_interface_id(bytes.fromhex("0011223344556677")) == bytes.fromhex("0211223344556677")
    with pytest.raises(ValueError):
        eui64_interface_id(b"\x00" * 5)


@pytest.mark.parametrize("text", ["", "2e:1a:b6:53:81", "2e:1a:b6:53:81:zz", "2e-1a-b6-53-81-69", "2e:1a:b6:53:81:6"])
def test_parse_mac_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mac(text)


def make_link(root: Path, name: str, mac: str, kind: int = 1, device: bool = True) -> None:
    link = root / name
    link.mkdir()
    (link / "type").write_text(f"{kind}\n")
    (link / "address").write_text(f"{mac}\n")
    if device:
        (link / "device").mkdir()


def test_first_ethernet_mac_prefers_hardware_links_in_name_order(tmp_path: Path) -> None:
    make_link(tmp_path, "lo", "00:00:00:00:00:00", kind=772, device=False)
    make_link(tmp_path, "br0", "02:00:00:00:00:01", device=False)
    make_link(tmp_path, "eth1", "02:00:00:00:00:03")
    make_link(tmp_path, "eth0", "02:00:00:00:00:02")
    make_link(tmp_path, "wg0", "", kind=65534, device=False)
    assert first_ethernet_mac(str(tmp_path)) == bytes.fromhex("020000000002")


def test_first_ethernet_mac_falls_back_to_virtual_ether(tmp_path: Path) -> None:
    make_link(tmp_path, "lo", "00:00:00:00:00:00", kind=772, device=False)
    make_link(tmp_path, "veth9", "02:00:00:00:00:09", device=False)
    make_link(tmp_path, "dummy0", "00:00:00:00:00:00", device=False)
    make_link(tmp_path, "eth0", "02:00:00:00:00:0a", device=False)
    assert first_ethernet_mac(str(tmp_path)) == bytes.fromhex("02000000000a")


def test_first_ethernet_mac_none(tmp_path: Path) -> None:
    make_link(tmp_path, "lo", "00:00:00:00:00:00", kind=772, device=False)
    assert first_ethernet_mac(str(tmp_path)) is None
    assert first_ethernet_mac(str(tmp_path / "missing")) is None
    with pytest.raises(IdentityError) as info:
        load_identity(str(tmp_path / "state"), VECTOR_CLUSTER_ID, sys_class_net=str(tmp_path))
    assert info.value.path == str(tmp_path)


# --- persistence ---------------------------------------------------------------


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_identity_is_created_once_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = SeededRng()
    first = load_identity(str(state), VECTOR_CLUSTER_ID, mac=parse_mac(VECTOR_MAC), rng=rng)
    assert listing(state) == ["kubespan-identity.yaml", "node-identity.yaml"]
    assert mode(state / "kubespan-identity.yaml") == 0o600
    assert mode(state / "node-identity.yaml") == 0o600
    assert first.address == ipaddress.IPv6Address("fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169")
    assert first.subnet == ipaddress.IPv6Network("fd7f:175a:b97c:5602::/64")
    assert first.public_key == first.private_key.public_key()
    assert len(base62.decode(first.node_id)) == 32

    calls = rng.calls
    again = load_identity(str(state), VECTOR_CLUSTER_ID, mac=parse_mac(VECTOR_MAC), rng=rng)
    assert rng.calls == calls  # nothing new drawn
    assert again == first
    assert again.private_key == first.private_key

    # A new NIC changes the address, not the keys or node ID.
    moved = load_identity(str(state), VECTOR_CLUSTER_ID, mac=bytes.fromhex("020000000001"), rng=rng)
    assert moved.private_key == first.private_key and moved.node_id == first.node_id
    assert moved.address != first.address


def test_file_format_is_talos_shaped(tmp_path: Path) -> None:
    ident = load_identity(str(tmp_path), "cluster", mac=bytes(6), rng=SeededRng())
    ks = yaml.safe_load((tmp_path / "kubespan-identity.yaml").read_text())
    assert ks == {"address": "", "subnet": "", "privateKey": ident.private_key.to_base64(),
                  "publicKey": ident.public_key.to_base64()}
    assert yaml.safe_load((tmp_path / "node-identity.yaml").read_text()) == {"nodeId": ident.node_id}
    # The stored key is clamped, like wgtypes.GeneratePrivateKey.
    raw = ident.private_key.raw
    assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40


def test_deterministic_with_injected_rng(tmp_path: Path) -> None:
    a = load_identity(str(tmp_path / "a"), "c", mac=bytes(6), rng=SeededRng(b"x"))
    b = load_identity(str(tmp_path / "b"), "c", mac=bytes(6), rng=SeededRng(b"x"))
    c = load_identity(str(tmp_path / "c"), "c", mac=bytes(6), rng=SeededRng(b"y"))
    assert a == b
    assert a.node_id != c.node_id and a.private_key != c.private_key


def test_existing_talos_file_is_reused(tmp_path: Path) -> None:
    key = PrivateKey.generate(SeededRng(b"talos"))
    (tmp_path / "kubespan-identity.yaml").write_text(
        f"address: fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128\nsubnet: fd7f:175a:b97c:5602::/64\n"
        f"privateKey: {key.to_base64()}\npublicKey: {key.public_key().to_base64()}\n"
    )
    (tmp_path / "node-identity.yaml").write_text("nodeId: 8OOh0XAEmpuUF6pRZgJ3Ew0Z7X3IoNWtKvsDZmUTY9N\n")
    ident = load_identity(str(tmp_path), "c", mac=bytes(6), rng=SeededRng())
    assert ident.private_key == key
    assert ident.node_id == "8OOh0XAEmpuUF6pRZgJ3Ew0Z7X3IoNWtKvsDZmUTY9N"


def test_repr_never_shows_the_private_key(tmp_path: Path) -> None:
    ident = load_identity(str(tmp_path), "c", mac=bytes(6), rng=SeededRng())
    text = repr(ident) + str(ident)
    assert ident.private_key.to_base64() not in text
    assert ident.private_key.to_hex() not in text
    assert ident.public_key.to_base64() in text
    assert isinstance(ident, Identity)


CORRUPT = [
    "",
    "\x00\x01garbage: [",
    "just a string",
    "- a\n- list\n",
    "privateKey: 1\npublicKey: 2\n",
    "address: ''\nsubnet: ''\n",
    "privateKey: AAAA\npublicKey: AAAA\n",
    "privateKey: not base64 at all!!\npublicKey: x\n",
]


@pytest.mark.parametrize("content", CORRUPT)
def test_corrupt_kubespan_identity_is_a_typed_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kubespan-identity.yaml"
    path.write_text(content)
    with pytest.raises(IdentityError) as info:
        load_or_create_private_key(str(tmp_path), rng=SeededRng())
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert path.read_text() == content  # never silently regenerated


def test_mismatched_public_key_is_corrupt_and_secret_free(tmp_path: Path) -> None:
    key = PrivateKey.generate(SeededRng(b"1"))
    other = PrivateKey.generate(SeededRng(b"2")).public_key()
    path = tmp_path / "kubespan-identity.yaml"
    path.write_text(f"privateKey: {key.to_base64()}\npublicKey: {other.to_base64()}\n")
    with pytest.raises(IdentityError) as info:
        load_or_create_private_key(str(tmp_path))
    assert "does not match" in str(info.value)
    assert key.to_base64() not in str(info.value)


@pytest.mark.parametrize("content", ["", "nodeId: ''\n", "nodeId: 12\n", "nodeId: 'not base62!'\n", "[1]\n"])
def test_corrupt_node_identity_is_a_typed_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "node-identity.yaml"
    path.write_text(content)
    with pytest.raises(IdentityError) as info:
        load_or_create_node_id(str(tmp_path))
    assert info.value.path == str(path)


def test_unreadable_file_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "node-identity.yaml").mkdir()  # a directory where a file should be
    with pytest.raises(IdentityError):
        load_or_create_node_id(str(tmp_path))


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.yaml"
    atomic_write(str(target), b"one")
    old_umask = os.umask(0)
    try:
        atomic_write(str(target), b"two")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"two"
    assert mode(target) == 0o600
    assert listing(target.parent) == ["f.yaml"]
    assert mode(target.parent) & 0o077 == 0


def test_atomic_write_cleans_up_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "keep").write_text("x")  # os.replace onto a non-empty directory fails
    with pytest.raises(OSError):
        atomic_write(str(target), b"data")
    assert listing(tmp_path) == ["d"]


def test_state_write_failure_is_a_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(IdentityError):
        load_or_create_node_id(str(blocker / "state"))


# --- base62 (jxskiss/base62) ----------------------------------------------------


def jxskiss_encode_v1(src: bytes) -> str:
    """A literal port of jxskiss/base62 ``encoder.next`` (the original V1
    encoder), to check the compact V2-style implementation against."""
    if not src:
        return ""
    pos = len(src) * 8
    out = []
    while True:
        p = pos - 6
        i = j = 0
        if p <= 0:
            p, blen = 0, pos
        else:
            i, j = p // 8, p % 8
            blen = min((i + 1) * 8 - p, 6)
        b = (src[i] >> (8 - j - blen)) & ((1 << blen) - 1)
        if blen < 6 and p > 0:
            extra = 6 - blen
            b = ((b << extra) | (src[i + 1] >> (8 - extra))) & 0xFF
        if b & 0x1E == 0x1E:
            if p > 0 or b > 0x1F:
                p += 1
            b &= 0x1F
        pos = p
        out.append(base62.ALPHABET[b])
        if p <= 0:
            return "".join(out)


@pytest.mark.parametrize("n", range(0, 70))
def test_base62_matches_reference_and_round_trips(n: int) -> None:
    rng = SeededRng(bytes([n]))
    for data in (bytes(n), b"\xff" * n, rng(n), rng(n), bytes([0x7C]) * n):
        text = base62.encode(data)
        assert text == jxskiss_encode_v1(data)
        assert base62.decode(text) == data
        assert set(text) <= set(base62.ALPHABET)


def test_base62_known_values() -> None:
    assert base62.encode(b"") == "" and base62.decode("") == b""
    assert base62.encode(b"\x00") == "AA"
    assert base62.encode(b"\x01") == "BA"
    # 0xff: the low 6 bits 111111 are a compact group -> 5 bits, 31 ('f');
    # the 3 bits left, 111 = 7 ('H').
    assert base62.encode(b"\xff") == "fH"
    assert base62.decode(base62.encode(b"\xff")) == b"\xff"
    with pytest.raises(base62.Base62Error) as info:
        base62.decode("abc+def")
    assert info.value.index == 3


def test_node_id_length_and_machine_id() -> None:
    rng = SeededRng(b"ids")
    lengths = {len(base62.encode(rng(32))) for _ in range(200)}
    assert lengths <= {43, 44, 45} and {43, 44} <= lengths
    node_id = base62.encode(bytes(range(32)))
    assert machine_id(node_id) == bytes(range(16)).hex()
