"""When the agent runs a status pass between reconciles: on the engine's events and at due times.

Contract (issue 15 item 3; ``kubespan.agent`` runs the pass itself):
``StatusPasses(run_pass, statuses, local_key)`` asks for a status pass --
``run_pass(why)``, awaited by ``run()`` -- in two cases and no other (an idle
mesh gets none):

- ``handshake``: the engine reports a completed handshake
  (``wgpy.events.Event.HANDSHAKE_COMPLETE``; ``engine_event`` is the sink
  handed to ``Interface.add_event_sink``) for a peer whose status is not up,
  or that answered from another endpoint than the one its status shows (an
  up peer's rekey changes nothing a status shows);
- ``timeout``: ``STATUS_SLACK`` after ``controller.next_pass_due`` (the next
  boundary of the state table, or the end of a first-contact hold), re-armed
  by ``arm(computed_at)`` after every pass, reconcile or status pass.  The due
  time is the next one after ``computed_at``, the clock value the statuses were
  computed at, not after the moment ``arm`` runs: a boundary that passed while
  the pass was applying its changes (a reconcile awaits netlink) is due at once
  instead of being skipped (a skipped first-contact hold left the greater key
  silent until the other side's 5 s retransmit).

Requests within ``STATUS_COALESCE`` share one pass; a request while a pass
runs gives one more after it.  The sink runs inside an engine call, on the
loop thread: it only sets a flag.  ``stop()`` ends ``run()`` and cancels the
timer.  Single event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from wgpy.config import Endpoint as WgEndpoint
from wgpy.events import Event
from wgpy.peer import Peer

from .controller import next_pass_due
from .peers import PeerState, PeerStatus

log = logging.getLogger("kubespan.agent")

STATUS_COALESCE = 0.02
"""Seconds a status pass waits after the request that asked for it, so that a burst shares one pass."""
STATUS_SLACK = 0.05
"""Seconds after a due time (a state-table boundary) before the pass that looks at it."""


class StatusPasses:
    """Requests and runs the agent's status passes (see the module contract)."""

    def __init__(self, run_pass: Callable[[str], Awaitable[bool]], statuses: Callable[[], Mapping[str, PeerStatus]],
                 local_key: str) -> None:
        self._run_pass = run_pass
        self._statuses = statuses
        self._local_key = local_key
        self._due = asyncio.Event()
        self._why = ""
        """What asked for the pending pass: ``handshake`` or ``timeout``."""
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def engine_event(self, event: Event, peer: Peer | None, endpoint: WgEndpoint | None) -> None:
        """The engine's event sink: a completed handshake that may change a status asks for a pass."""
        if event is not Event.HANDSHAKE_COMPLETE or peer is None:
            return
        status = self._statuses().get(peer.public_key.to_base64())
        if status is not None and status.state is PeerState.UP and status.endpoint is not None:
            seen = peer.endpoint
            if seen is not None and (str(status.endpoint.ip), status.endpoint.port) == (seen[0], seen[1]):
                return
        self.want("handshake")

    @property
    def pending(self) -> str | None:
        """What asked for the pass not run yet, or None."""
        return self._why if self._due.is_set() and not self._stopped else None

    def want(self, why: str) -> None:
        if not self._due.is_set():
            self._why = why
            self._due.set()

    def arm(self, computed_at: float | None = None) -> None:
        """After every pass: a ``timeout`` pass when the next one has work (``controller.next_pass_due``
        after ``computed_at``, the clock value the statuses were computed at; default now)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.time()
        due = next_pass_due(self._local_key, self._statuses(), now if computed_at is None else min(now, computed_at))
        if due is not None and not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, due - now) + STATUS_SLACK, self.want,
                                                                "timeout")

    async def run(self) -> None:
        while not self._stopped:
            await self._due.wait()
            if self._stopped:
                return
            await asyncio.sleep(STATUS_COALESCE)
            why, self._why = self._why, ""
            self._due.clear()
            try:
                await self._run_pass(why)
            except Exception:  # the next event, due time or reconcile retries
                log.exception("status pass failed")

    def stop(self) -> None:
        self._stopped = True
        self._due.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
