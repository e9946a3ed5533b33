"""The static keys that initiations claimed although no configured peer has them.

Contract: ``UnknownInitiators`` maps each claimed key to the wall-clock time of its latest such
initiation, at most ``UNKNOWN_INITIATORS_MAX`` of them, the oldest forgotten first.  The claim is
unauthenticated (the initiation could not be checked without the peer), so a caller may only use it
as a hint: kubespan's first contact initiates at once towards a node that already tried, instead of
waiting for that node's retransmit.  Pure: the caller passes the time.
"""

from __future__ import annotations

from .keys import PublicKey

__all__ = ["UnknownInitiators", "UNKNOWN_INITIATORS_MAX"]

UNKNOWN_INITIATORS_MAX = 256
"""How many unknown initiators are remembered."""


class UnknownInitiators(dict[PublicKey, float]):
    """Claimed static key -> wall-clock time of its latest initiation, oldest first."""

    def note(self, public_key: PublicKey, when: float) -> None:
        """An initiation claiming ``public_key`` (no configured peer) was dropped at ``when``."""
        self.pop(public_key, None)
        self[public_key] = when
        if len(self) > UNKNOWN_INITIATORS_MAX:
            del self[next(iter(self))]
