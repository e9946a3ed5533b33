"""The whole engine test suite (tests/engine) again, with a data plane attached.

Every ``Device`` the in-memory ``DevicePair`` builds gets a fresh
``PureDataPlane`` or ``NativeDataPlane``: keypairs come from the plane's
factory (``NativeKeypair``: keys, counters and replay window in C) and the
plane is kept in sync through the engine hooks.  The engine's observable
behaviour (wire bytes, counters, timers, drops) must not change.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import wgsupport

from wgpy import _native
from wgpy.dataplane import NativeDataPlane
from wgpy.dataplane_twin import PureDataPlane
from wgpy.device import Device

from engine.test_device_pair import *  # noqa: F401,F403  (re-collected here under both planes)


@pytest.fixture(autouse=True, params=["pure", "native"])
def _plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "native" and not _native.available():
        pytest.fail(f"native data plane unavailable: {_native.load_error()}")
    factory = PureDataPlane if request.param == "pure" else NativeDataPlane

    def make(**kw: Any) -> Device:
        return Device(dataplane=factory(), **kw)

    monkeypatch.setattr(wgsupport, "Device", make)
    yield request.param
