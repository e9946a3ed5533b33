"""tests/native: the compiled data plane must be present here (CI builds it); fail, never skip."""

from __future__ import annotations

import pytest

from wgpy import _native


@pytest.fixture(autouse=True)
def _require_native() -> None:
    if not _native.available():
        pytest.fail(f"native data plane unavailable: {_native.load_error()}")
