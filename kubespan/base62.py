"""Base62 in the jxskiss/base62 byte format (Talos node IDs, kubespan.md §2).

Contract: ``encode(data) -> str`` and ``decode(text) -> bytes`` produce and
accept exactly what ``github.com/jxskiss/base62`` ``EncodeToString`` /
``DecodeString`` do with the standard alphabet ``A-Z a-z 0-9``.  Talos
encodes the 32 random bytes of a node ID this way (43–44 characters).

The format reads the input as one big-endian bit string and emits it from
the least significant end, 6 bits per character.  A 6-bit group whose bits
4..1 are all set (values 30, 31, 62, 63) cannot be a digit (only 62 exist),
so such a group is written as its low 5 bits (30 or 31) and only 5 bits are
consumed; the last group, with fewer than 6 bits left, is written whole.
Decoding reverses this: every character but the last adds 6 bits, or 5 for
a 30/31; the last adds its bit length.  Leading zero bytes survive because
the decoded length is fixed by the number of bits, not by the value.

``decode`` raises ``Base62Error`` (a ``ValueError``) for a character outside
the alphabet.  Pure functions, no I/O.
"""

from __future__ import annotations

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
_COMPACT_MASK = 0x1E
_MASK5 = 0x1F
_MASK6 = 0x3F


class Base62Error(ValueError):
    """Text that is not base62; ``index`` is the offending character."""

    def __init__(self, index: int) -> None:
        super().__init__(f"illegal base62 data at input byte {index}")
        self.index = index


def encode(data: bytes) -> str:
    """Encode ``data`` (any length; ``b""`` gives ``""``)."""
    nbits = len(data) * 8
    value = int.from_bytes(data, "big")
    out: list[str] = []
    consumed = 0
    while consumed < nbits:
        group = (value >> consumed) & _MASK6
        size = 6
        if group & _COMPACT_MASK == _COMPACT_MASK:
            if nbits - consumed > 6 or group > _MASK5:
                size = 5
            group &= _MASK5
        out.append(ALPHABET[group])
        consumed += size
    return "".join(out)


def decode(text: str) -> bytes:
    """Decode ``text``; raises ``Base62Error`` on a character not in the alphabet."""
    value = 0
    nbits = 0
    last = len(text) - 1
    for i, char in enumerate(text):
        digit = _DECODE.get(char)
        if digit is None:
            raise Base62Error(i)
        value |= digit << nbits
        if i == last:
            nbits += digit.bit_length()
        elif digit & _COMPACT_MASK == _COMPACT_MASK:
            nbits += 5
        else:
            nbits += 6
    nbytes = (nbits + 7) // 8
    return (value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "big")
