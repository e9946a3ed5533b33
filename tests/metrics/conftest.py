"""Fixtures for the metrics and log tests: ``netns_pair`` is the integration tests' (see metrics_support)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_support import netns_pair  # noqa: E402

__all__ = ["netns_pair"]
