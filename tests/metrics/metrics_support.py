"""Support for the metrics and log tests: the integration tests' two-namespace harness, and a scraper.

``Pair`` / ``netns_pair`` are ``tests/integration``'s (namespaces, veth, daemons; everything removed also on
failure), loaded once under their own module name.  ``fetch(url)`` is a real HTTP client (urllib); ``parse``
reads an exposition with prometheus-client's own parser.
"""

from __future__ import annotations

import importlib.util
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))

_fixtures = sys.modules.get("integration_fixtures")
if _fixtures is None:
    _spec = importlib.util.spec_from_file_location("integration_fixtures", INTEGRATION / "conftest.py")
    assert _spec is not None and _spec.loader is not None
    _fixtures = importlib.util.module_from_spec(_spec)
    sys.modules["integration_fixtures"] = _fixtures
    _spec.loader.exec_module(_fixtures)
netns_pair = _fixtures.netns_pair
Pair = _fixtures.Pair

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (name, labels) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """(status, content type, body) of one GET."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback / test namespace only
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")


def value(samples: Samples, metric: str, **labels: str) -> float:
    """The one sample called ``metric`` whose labels include ``labels``."""
    hits = [v for (n, ls), v in samples.items() if n == metric and set(labels.items()) <= ls]
    assert len(hits) == 1, f"{metric}{labels}: {len(hits)} samples"
    return hits[0]
