"""The affiliate's relay field of our own (``KubeSpan.relay = 20000``) and what a Talos parser makes of it.

A Talos node (or any parser built from the upstream ``affiliate.proto``) does not know the field: it must
decode our affiliate with every upstream field intact and the relay flag kept as an unknown field; our parser
must decode an upstream affiliate (no field) as ``relay = False``.  The upstream parser here is built at test
time from our own descriptor minus the field, in a separate descriptor pool.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from hypothesis import given, settings
from hypothesis import strategies as st

from kubespan import specs
from kubespan.affiliates import NodeAddress, from_remote, local_affiliate, merge
from kubespan.config import NodeConfig, parse_config
from kubespan.discovery.errors import DiscoveryPayloadError
from kubespan.discovery.proto import affiliate_pb2 as pb
from kubespan.discovery.protocol import Affiliate, KubeSpan, decode_affiliate, encode_affiliate
from kubespan.identity import Identity, node_address, ula_prefix
from wgpy.keys import PrivateKey

RELAY_FIELD_NUMBER = 20000
CLUSTER_ID = "8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo="
SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def config(kubespan: str = "") -> NodeConfig:
    return parse_config(
        f"apiVersion: v1alpha1\nkind: KubeSpanConfig\nenabled: true\n{kubespan}\n---\n"
        "apiVersion: v1alpha1\nkind: DiscoveryServiceConfig\nname: default\nendpoint: http://127.0.0.1:3000\n---\n"
        f"apiVersion: v1alpha1\nkind: DiscoveryIdentityConfig\nclusterID: {CLUSTER_ID}\nclusterSecret: {SECRET}\n")


def identity() -> Identity:
    key = PrivateKey(bytes(range(1, 33)))
    return Identity(node_id="local-node", private_key=key, public_key=key.public_key(),
                    address=node_address(CLUSTER_ID, bytes.fromhex("2e1ab6538169")), subnet=ula_prefix(CLUSTER_ID))


def upstream_affiliate_class() -> Any:
    """``sidero.discovery.client.Affiliate`` as upstream defines it: ``KubeSpan`` without our field."""
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    kubespan = next(m for m in proto.message_type if m.name == "KubeSpan")
    kept = [f for f in kubespan.field if f.number != RELAY_FIELD_NUMBER]
    assert len(kept) == len(kubespan.field) - 1, "our field is missing from affiliate.proto"
    del kubespan.field[:]
    kubespan.field.extend(kept)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("sidero.discovery.client.Affiliate"))


def sample(relay: bool) -> Affiliate:
    return Affiliate(
        node_id="n1", addresses=(ipaddress.ip_address("10.0.0.1"),), hostname="h", nodename="node-1",
        machine_type="worker", operating_system="kubespan-py",
        kubespan=KubeSpan(public_key="K" * 43 + "=", address=ipaddress.ip_address("fd00::1"),
                          exclude_advertised_networks=(ipaddress.ip_interface("10.9.0.0/16"),), relay=relay),
    )


def test_the_field_number_is_ours_and_high() -> None:
    field = pb.KubeSpan.DESCRIPTOR.fields_by_name["relay"]
    assert field.number == RELAY_FIELD_NUMBER and not 19000 <= field.number <= 19999
    assert max(f.number for f in pb.KubeSpan.DESCRIPTOR.fields if f.name != "relay") < 100


def test_an_affiliate_with_the_field_decodes_in_a_parser_that_does_not_know_it() -> None:
    wire = encode_affiliate(sample(relay=True))
    upstream = upstream_affiliate_class()()
    upstream.ParseFromString(wire)  # no error: an unknown field is skipped
    assert upstream.node_id == "n1" and upstream.nodename == "node-1"
    assert upstream.kubespan.public_key == "K" * 43 + "="
    assert list(upstream.kubespan.address) == list(ipaddress.ip_address("fd00::1").packed)
    assert len(upstream.kubespan.exclude_advertised_addresses) == 1
    assert "relay" not in upstream.kubespan.DESCRIPTOR.fields_by_name
    unknown = unknown_fields.UnknownFieldSet(upstream.kubespan)
    assert [(f.field_number, f.data) for f in unknown] == [(RELAY_FIELD_NUMBER, 1)]
    # what upstream re-encodes (it keeps unknown fields) still carries the flag to us
    assert decode_affiliate(upstream.SerializeToString()).kubespan == sample(relay=True).kubespan


def test_an_affiliate_without_the_field_decodes_here_as_relay_false() -> None:
    upstream = upstream_affiliate_class()(node_id="n2", nodename="talos-1")
    upstream.kubespan.public_key = "T" * 43 + "="
    decoded = decode_affiliate(upstream.SerializeToString())
    assert decoded.kubespan is not None and decoded.kubespan.relay is False
    assert from_remote(decoded, ()).relay is False
    # and relay = false is not on the wire at all: our non-relay affiliate is byte-identical to upstream's
    ours = encode_affiliate(sample(relay=False))
    theirs = upstream_affiliate_class()()
    theirs.ParseFromString(ours)
    assert theirs.SerializeToString() == ours and len(unknown_fields.UnknownFieldSet(theirs.kubespan)) == 0


def test_the_local_affiliate_announces_the_setting_and_the_merge_keeps_it() -> None:
    addrs = [NodeAddress(ipaddress.ip_address("192.168.1.10"), 24, "eth0")]
    on = local_affiliate(identity(), config("relay: true"), addrs, "h", "n")
    off = local_affiliate(identity(), config(), addrs, "h", "n")
    assert on.kubespan is not None and on.kubespan.relay
    assert off.kubespan is not None and not off.kubespan.relay
    spec = from_remote(decode_affiliate(encode_affiliate(on)), ())
    assert spec.relay and spec.spec_input().relay
    assert specs.affiliate_spec(spec)["kubespan"]["relay"] is True
    assert "relay" not in specs.affiliate_spec(from_remote(off, ()))["kubespan"]
    # two raw affiliates of one node: set when any of them sets it
    merged = merge({"k8s/n": from_remote(off, ()), "service/n": spec})
    assert merged[on.node_id].relay


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@settings(max_examples=300, deadline=None)
@given(wire_type=st.sampled_from([0, 1, 2, 5, 3, 4, 6, 7]), body=st.binary(max_size=12), value=st.integers(0, 2**70))
def test_any_bytes_in_our_field_decode_or_fail_typed(wire_type: int, body: bytes, value: int) -> None:
    """Whatever a peer puts in field 20000 of KubeSpan (any wire type, any bytes), decoding gives an affiliate
    (relay true or false) or a DiscoveryPayloadError, never another exception."""
    kubespan = pb.KubeSpan(public_key="K" * 43 + "=").SerializeToString()
    tag = _varint(RELAY_FIELD_NUMBER << 3 | wire_type)
    extra = tag + (_varint(value) if wire_type == 0 else _varint(len(body)) + body if wire_type == 2 else body)
    kubespan += extra
    wire = pb.Affiliate(node_id="n").SerializeToString() + b"\x3a" + _varint(len(kubespan)) + kubespan
    try:
        decoded = decode_affiliate(wire)
    except DiscoveryPayloadError:
        return
    assert decoded.kubespan is not None and isinstance(decoded.kubespan.relay, bool)
    if wire_type == 0:
        assert decoded.kubespan.relay is (value % 2**64 != 0)
