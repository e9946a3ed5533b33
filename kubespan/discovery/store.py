"""The state backend the discovery service talks to (spec §3.5).

Owns ``Store``, the five operations the service needs, and ``MemoryStore``,
the embedded default over the in-memory ``State`` (snapshots live in the
service).  ``etcdstate.EtcdState`` is the other backend; both apply
``record``'s rules, so the API behaves the same on either.

Errors: limit errors (``errors.LimitError``) for bad requests; the etcd
backend also raises ``etcd.EtcdError`` when etcd cannot be used (the service
answers UNAVAILABLE).  ``subscribe`` is synchronous so that the snapshot and
the first update cannot interleave with another coroutine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from kubespan.discovery.state import AffiliateView, GcResult, State, Subscription


class Store(Protocol):
    async def update_affiliate(
        self, cluster_id: str, affiliate_id: str, data: bytes | None, endpoints: Sequence[bytes], ttl: float
    ) -> None: ...

    async def delete_affiliate(self, cluster_id: str, affiliate_id: str) -> None: ...

    async def list_affiliates(self, cluster_id: str) -> list[AffiliateView]: ...

    def subscribe(self, cluster_id: str) -> tuple[list[AffiliateView], Subscription]: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    async def garbage_collect(self) -> GcResult: ...


class MemoryStore:
    """``Store`` over one process's ``State`` (``clock``: the state's time scale)."""

    def __init__(self, state: State, clock: Callable[[], float]) -> None:
        self.state = state
        self.clock = clock

    async def update_affiliate(
        self, cluster_id: str, affiliate_id: str, data: bytes | None, endpoints: Sequence[bytes], ttl: float
    ) -> None:
        self.state.update_affiliate(cluster_id, affiliate_id, data, endpoints, ttl, self.clock())

    async def delete_affiliate(self, cluster_id: str, affiliate_id: str) -> None:
        self.state.delete_affiliate(cluster_id, affiliate_id)

    async def list_affiliates(self, cluster_id: str) -> list[AffiliateView]:
        return self.state.list_affiliates(cluster_id)

    def subscribe(self, cluster_id: str) -> tuple[list[AffiliateView], Subscription]:
        return self.state.subscribe(cluster_id)

    def unsubscribe(self, sub: Subscription) -> None:
        self.state.unsubscribe(sub)

    async def garbage_collect(self) -> GcResult:
        return self.state.garbage_collect(self.clock())
