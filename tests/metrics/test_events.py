"""The engine's peer events (wgpy.events) and their log lines (wgpy.io.eventlog), on two in-memory devices."""

from __future__ import annotations

import logging

import pytest
from wgsupport import DevicePair

from wgpy.constants import MAX_TIMER_HANDSHAKES, REKEY_TIMEOUT, ZERO_KEY_MATERIAL_AFTER
from wgpy.events import Event
from wgpy.io.eventlog import EventLog, short_key
from wgpy.peer import Peer


def record(p: DevicePair) -> list[tuple[str, Event]]:
    seen: list[tuple[str, Event]] = []
    for node in (p.a, p.b):
        node.device.on_event = lambda event, peer, ep, name=node.name: seen.append((name, event))
    return seen


def test_a_handshake_notes_each_message_once_on_each_side() -> None:
    p = DevicePair()
    seen = record(p)
    p.send_ip(p.a, b"hello")
    p.deliver()
    assert seen == [
        ("a", Event.INITIATION_SENT),
        ("b", Event.INITIATION_RECEIVED), ("b", Event.KEYPAIR_CREATED), ("b", Event.RESPONSE_SENT),
        ("a", Event.RESPONSE_RECEIVED), ("a", Event.KEYPAIR_CREATED), ("a", Event.HANDSHAKE_COMPLETE),
        ("b", Event.HANDSHAKE_COMPLETE),  # the responder: a's first transport message (the staged data)
    ]
    assert p.a.device.events == {Event.INITIATION_SENT: 1, Event.RESPONSE_RECEIVED: 1, Event.KEYPAIR_CREATED: 1,
                                 Event.HANDSHAKE_COMPLETE: 1}
    assert p.b.device.events == {Event.INITIATION_RECEIVED: 1, Event.RESPONSE_SENT: 1, Event.KEYPAIR_CREATED: 1,
                                 Event.HANDSHAKE_COMPLETE: 1}


def test_handshake_complete_comes_once_the_last_handshake_time_is_set() -> None:
    p = DevicePair()
    seen: list[tuple[str, float | None]] = []
    for node in (p.a, p.b):
        def sink(event: Event, peer: Peer | None, ep: object, name: str = node.name) -> None:
            if event is Event.HANDSHAKE_COMPLETE:
                assert peer is not None
                seen.append((name, peer.last_handshake_wall))
        node.device.on_event = sink
    p.send_ip(p.a, b"hello")
    p.deliver()
    assert [name for name, _ in seen] == ["a", "b"]
    assert all(when is not None for _, when in seen)


def test_retries_give_up_and_zeroing_are_noted() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"lost")
    p.wire.clear()  # b never hears: a retries every REKEY_TIMEOUT, then gives up
    for _ in range(MAX_TIMER_HANDSHAKES + 3):
        p.clock.advance(REKEY_TIMEOUT + 1)
        p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
        p.wire.clear()
    events = p.a.device.events
    # the first try and MAX_TIMER_HANDSHAKES + 1 retries: "giving up after 20 attempts", as wireguard-go
    assert events[Event.HANDSHAKE_RETRY] == MAX_TIMER_HANDSHAKES + 1
    assert events[Event.HANDSHAKE_GIVE_UP] == 1
    assert events[Event.INITIATION_SENT] == MAX_TIMER_HANDSHAKES + 2
    p.clock.advance(ZERO_KEY_MATERIAL_AFTER)
    p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
    assert p.a.device.events[Event.KEYS_ZEROED] == 1


def test_keepalives_are_noted_on_both_sides() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    p.clock.advance(11)  # b got data and sent nothing back: its passive keepalive fires
    p.collect(p.b, p.b.device.handle_timeout(p.clock.now))
    p.deliver()
    assert p.b.device.events[Event.KEEPALIVE_SENT] == 1
    assert p.a.device.events[Event.KEEPALIVE_RECEIVED] == 1


def test_log_lines_use_wireguard_go_sentences_and_short_keys(caplog: pytest.LogCaptureFixture) -> None:
    p = DevicePair()
    for node in (p.a, p.b):
        node.device.on_event = EventLog(logging.getLogger(f"test.peer.{node.name}"))
    with caplog.at_level(logging.DEBUG, logger="test.peer"):
        p.send_ip(p.a, b"hello")
        p.deliver()
    b_name = short_key(p.b.key.public_key())
    a_name = short_key(p.a.key.public_key())
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("test.peer.a", "INFO", f"{b_name} - Sending handshake initiation"),
        ("test.peer.b", "INFO", f"{a_name} - Received handshake initiation"),
        ("test.peer.b", "INFO", f"{a_name} - Keypair 1 created"),
        ("test.peer.b", "INFO", f"{a_name} - Sending handshake response"),
        ("test.peer.a", "INFO", f"{b_name} - Received handshake response"),
        ("test.peer.a", "INFO", f"{b_name} - Keypair 1 created"),
    ]
    full = p.b.key.public_key().to_base64()
    assert b_name == f"peer({full[:4]}…{full[39:43]})"
    text = "\n".join(m for _, _, m in lines)
    for node in (p.a, p.b):
        assert node.key.to_base64() not in text and node.key.public_key().to_base64() not in text
    assert p.psk is not None and p.psk.to_base64() not in text


def test_retry_line_counts_the_try_as_wireguard_go(caplog: pytest.LogCaptureFixture) -> None:
    p = DevicePair()
    p.a.device.on_event = EventLog(logging.getLogger("test.retry"))
    p.send_ip(p.a, b"lost")
    p.wire.clear()
    with caplog.at_level(logging.INFO, logger="test.retry"):
        p.clock.advance(REKEY_TIMEOUT + 1)
        p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
    name = short_key(p.b.key.public_key())
    assert [r.getMessage() for r in caplog.records] == [
        f"{name} - Handshake did not complete after 5 seconds, retrying (try 2)",
        f"{name} - Sending handshake initiation",
    ]
