"""Log output for the agent and the discovery service: text or one JSON object per line.

Contract: ``setup(level, fmt, stream)`` installs one handler on the root
logger.  ``text`` lines are ``TIME LEVEL LOGGER: MESSAGE``; ``json`` lines
are objects with ``time`` (RFC 3339, UTC, milliseconds), ``level``
(debug/info/warning/error/critical), ``logger`` and ``msg``, plus ``error``
with the traceback when there is one -- every line carries its level either
way.  The kubespan and wgpy loggers get ``level``; libraries (grpc,
pyroute2) stay at warnings; the per-peer handshake lines of wgpy
(``wgpy.peer``) only show at ``debug``, where they belong for a mesh of many
peers.  Nothing here decides what is logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
OURS = ("kubespan", "wgpy")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure logging as the module contract says (``ValueError`` for an unknown format)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: want one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    value = getattr(logging, level.upper(), logging.INFO)
    for name in OURS:
        logging.getLogger(name).setLevel(value)
    logging.getLogger("wgpy.peer").setLevel(value if value <= logging.DEBUG else logging.WARNING)
