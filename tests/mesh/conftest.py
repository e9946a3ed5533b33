"""Fixtures for the mesh tests: a ``lab.mesh.Lab`` per test, torn down also on failure.

Every namespace, link and process a test creates belongs to the lab and is removed by ``lab.close()`` in
the fixture finalizer.  When a test fails, the tail of every process log (agents, discovery service) and
the router counters are attached to the report as a "mesh lab" section.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.mesh import Lab, missing_requirements


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    lab = getattr(item, "funcargs", {}).get("lab")
    if report.failed and isinstance(lab, Lab) and lab.namespaces:
        try:
            counters = lab.counters()
        except Exception as exc:  # the report must not hide the original failure
            counters = {"error": str(exc)}
        report.sections.append(("mesh lab", f"router counters: {counters}\n{lab.describe(lab.nodes)}\n{lab.logs()}"))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    problems = missing_requirements()
    if problems:
        pytest.fail("mesh test: " + "; ".join(problems))
    the_lab = Lab(tmp_path)
    try:
        yield the_lab
    finally:
        the_lab.close()
