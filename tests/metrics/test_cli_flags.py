"""The flags' edges: a bad --metrics-addr is a usage error; JSON log lines carry level and traceback."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from kubespan import logfmt

REPO = Path(__file__).resolve().parents[2]


def test_agent_refuses_a_bad_metrics_address_as_a_usage_error(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "kubespan", "agent", "--config", str(tmp_path / "none.yaml"),
                          "--metrics-addr", "9101"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "--metrics-addr" in res.stderr and "HOST:PORT" in res.stderr


def test_json_lines_have_time_level_logger_msg_and_the_traceback() -> None:
    out = io.StringIO()
    logfmt.setup("debug", "json", out)
    try:
        logging.getLogger("kubespan.test").warning("peer %s down", "node-2")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("kubespan.test").exception("reconcile failed")
        logging.getLogger("grpc").info("library chatter stays out")
    finally:
        logfmt.setup("info", "text", sys.stderr)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "kubespan.test" and first["msg"] == "peer node-2 down"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "error" and "RuntimeError: boom" in second["error"]
