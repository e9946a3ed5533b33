"""WireGuard constants.

Owns every protocol number that wgpy uses.  "Specification constants" are the
whitepaper's (wireguard.md §5) and must never change; "implementation
constants" are choices shared with wireguard-go and the kernel that an
implementation may tune.  Times are seconds (float), sizes are bytes.
"""

from __future__ import annotations

from typing import Final

# --- Specification constants (whitepaper §5 / wireguard.md §5) -------------
CONSTRUCTION: Final = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER: Final = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1: Final = b"mac1----"
LABEL_COOKIE: Final = b"cookie--"

REKEY_AFTER_MESSAGES: Final = 2**60
REJECT_AFTER_MESSAGES: Final = 2**64 - 2**13 - 1
REKEY_AFTER_TIME: Final = 120.0
REJECT_AFTER_TIME: Final = 180.0
REKEY_ATTEMPT_TIME: Final = 90.0
REKEY_TIMEOUT: Final = 5.0
KEEPALIVE_TIMEOUT: Final = 10.0
COOKIE_REFRESH_TIME: Final = 120.0
MAX_TIMER_HANDSHAKES: Final = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)  # 18

# --- Implementation constants (shared with wireguard-go / the kernel) -------
REKEY_TIMEOUT_JITTER_MAX: Final = 0.334  # uniform 0..333 ms (kernel HZ/3)
NEW_HANDSHAKE_TIMEOUT: Final = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT  # 15 s
ZERO_KEY_MATERIAL_AFTER: Final = 3 * REJECT_AFTER_TIME  # 540 s
RECEIVE_REKEY_AFTER: Final = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT  # 165 s
INITIATIONS_PER_SECOND: Final = 50
INITIATION_MIN_INTERVAL: Final = 1.0 / INITIATIONS_PER_SECOND  # 20 ms
COOKIE_SECRET_MAX_AGE: Final = COOKIE_REFRESH_TIME
COOKIE_VALID_FOR: Final = COOKIE_REFRESH_TIME - 5.0  # kernel's 115 s
UNDER_LOAD_AFTER_TIME: Final = 1.0
UNDER_LOAD_QUEUE_LEN: Final = 128  # handshake queue depth that means "under load"
HANDSHAKE_QUEUE_LEN: Final = 1024
RATELIMIT_PACKETS_PER_SECOND: Final = 20
RATELIMIT_BURST: Final = 5
MAX_STAGED_PACKETS: Final = 128
MAX_PEERS: Final = 1 << 16
DEFAULT_MTU: Final = 1420
MAX_SEGMENT_SIZE: Final = 65535
REPLAY_RING_BITS: Final = 8192
REPLAY_WINDOW: Final = REPLAY_RING_BITS - 64  # 8128

# --- Wire sizes (wireguard.md §2) ------------------------------------------
MESSAGE_INITIATION: Final = 1
MESSAGE_RESPONSE: Final = 2
MESSAGE_COOKIE_REPLY: Final = 3
MESSAGE_TRANSPORT: Final = 4
INITIATION_SIZE: Final = 148
RESPONSE_SIZE: Final = 92
COOKIE_REPLY_SIZE: Final = 64
TRANSPORT_HEADER_SIZE: Final = 16
TAG_SIZE: Final = 16
TRANSPORT_MIN_SIZE: Final = TRANSPORT_HEADER_SIZE + TAG_SIZE  # 32
KEY_SIZE: Final = 32
TIMESTAMP_SIZE: Final = 12
MAC_SIZE: Final = 16
COOKIE_NONCE_SIZE: Final = 24

# --- Relaying (wgpy's own extension, /work design "relay"; not WireGuard) ---
MESSAGE_RELAY: Final = 5
"""A relay frame: one WireGuard datagram wrapped for a relay (wgpy.relayframe)."""
RELAY_FRAME_VERSION: Final = 1
RELAY_HEADER_SIZE: Final = 84  # type, version, 2 reserved, sender key, receiver key, 16-byte tag
RELAY_KEY_SIZE: Final = 32
RELAY_PROBE_INTERVAL: Final = 5.0
"""Seconds between direct probes of a relayed peer (one keepalive to its probe endpoint)."""
RELAY_PAIR_RATE: Final = 32 << 20
"""Bytes per second a relay forwards per (sender, receiver) pair by default."""
RELAY_PAIR_BURST: Final = 4 << 20
"""Bytes a pair may send at once before the rate applies, by default."""
RELAY_MAX_PAIRS: Final = 1 << 14
"""Pairs with a token bucket at most; beyond it new pairs are refused (rate-limited) until idle ones go."""
