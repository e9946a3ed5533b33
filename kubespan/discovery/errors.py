"""Errors of the discovery package (spec/kubespan.md §3).

``DiscoveryPayloadError``: bytes from the discovery service that do not
decrypt or decode into an affiliate/endpoint (remote input; the client drops
and counts them).  ``LimitError`` and its two subclasses: a request breaks a
limit of §3.5; the service maps them to gRPC INVALID_ARGUMENT and
RESOURCE_EXHAUSTED.  Nothing here carries key material.
"""

from __future__ import annotations

from wgpy import WgpyError


class DiscoveryError(WgpyError):
    """Base class of the discovery package's errors."""


class DiscoveryPayloadError(DiscoveryError):
    """An encrypted affiliate or endpoint that cannot be decrypted or decoded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LimitError(DiscoveryError):
    """A request breaks a discovery-service limit; nothing was changed."""


class InvalidArgumentError(LimitError):
    """Malformed request (bad ID length, oversized blob, bad TTL): INVALID_ARGUMENT."""


class ResourceExhaustedError(LimitError):
    """A per-affiliate or per-cluster capacity is full: RESOURCE_EXHAUSTED."""


class SnapshotError(DiscoveryError):
    """A state snapshot file that cannot be decoded."""
