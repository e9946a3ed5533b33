"""Discovery-service limits (spec/kubespan.md §3.5) and their validators.

Owns every number the server enforces, like discovery-service's pkg/limits;
the state only calls these validators.  Pure.  A failed check raises
``InvalidArgumentError`` (malformed request) or ``ResourceExhaustedError``
(capacity), which the service maps to the gRPC codes of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubespan.discovery.errors import InvalidArgumentError, ResourceExhaustedError

CLUSTER_ID_MAX = 256
AFFILIATE_ID_MAX = 256
AFFILIATE_DATA_MAX = 2048
AFFILIATE_ENDPOINT_MAX = 32
AFFILIATE_ENDPOINTS_MAX = 64
CLUSTER_AFFILIATES_MAX = 1024
TTL_MAX = 30 * 60.0

RATE_LIMIT_PER_SECOND = 15.0
RATE_LIMIT_BURST = 60
WATCH_BUFFER = 32


def validate_cluster_id(cluster_id: str) -> None:
    if not 1 <= len(cluster_id) <= CLUSTER_ID_MAX:
        raise InvalidArgumentError(f"cluster ID length must be 1..{CLUSTER_ID_MAX}")


def validate_affiliate_id(affiliate_id: str) -> None:
    if not 1 <= len(affiliate_id) <= AFFILIATE_ID_MAX:
        raise InvalidArgumentError(f"affiliate ID length must be 1..{AFFILIATE_ID_MAX}")


def validate_affiliate_data(data: bytes | None) -> None:
    if data is not None and len(data) > AFFILIATE_DATA_MAX:
        raise InvalidArgumentError(f"affiliate data is longer than {AFFILIATE_DATA_MAX} bytes")


def validate_endpoints(endpoints: Sequence[bytes]) -> None:
    for endpoint in endpoints:
        if len(endpoint) > AFFILIATE_ENDPOINT_MAX:
            raise InvalidArgumentError(
                f"affiliate endpoint is longer than {AFFILIATE_ENDPOINT_MAX} bytes"
            )


def validate_ttl(ttl: float) -> None:
    """Only an upper bound, like upstream: a missing/zero TTL expires at the next GC."""
    if ttl > TTL_MAX:
        raise InvalidArgumentError(f"TTL is longer than {TTL_MAX:.0f} seconds")


def check_endpoint_count(count: int) -> None:
    if count > AFFILIATE_ENDPOINTS_MAX:
        raise ResourceExhaustedError(f"more than {AFFILIATE_ENDPOINTS_MAX} endpoints")


def check_affiliate_count(count: int) -> None:
    if count > CLUSTER_AFFILIATES_MAX:
        raise ResourceExhaustedError(f"more than {CLUSTER_AFFILIATES_MAX} affiliates")


LimitErrors = (InvalidArgumentError, ResourceExhaustedError)
