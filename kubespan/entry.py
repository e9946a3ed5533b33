"""The ``kubespan`` console entry: refuses to start without the ``kubespan`` extra.

Contract: ``main()`` checks, without importing them, that the modules of the
``wgpy[kubespan]`` extra can be found (grpcio, protobuf, PyYAML, pyroute2).
When one is missing it prints one line naming the missing distributions and
the install command, and returns 1, instead of a traceback from deep inside a
subcommand; otherwise it runs ``kubespan.cli.main``.  A module of the extra
that goes missing later (a lazy import) gets the same line.
"""

from __future__ import annotations

import importlib.util
import sys

# module -> the distribution that provides it (the [kubespan] extra in pyproject.toml)
EXTRA = {"grpc": "grpcio", "google.protobuf": "protobuf", "yaml": "PyYAML", "pyroute2": "pyroute2"}
INSTALL = "pip install 'wgpy[kubespan]'"


def missing_distributions() -> list[str]:
    """The extra's distributions whose module cannot be found, in ``EXTRA`` order."""
    out = []
    for module, dist in EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a missing parent package, or a module blocked in sys.modules
            found = False
        if not found:
            out.append(dist)
    return out


def _hint(missing: list[str]) -> int:
    sys.stderr.write(f"kubespan: missing {', '.join(missing)} (the kubespan extra); install it with: {INSTALL}\n")
    return 1


def main() -> int:
    missing = missing_distributions()
    if missing:
        return _hint(missing)
    try:
        from .cli import main as cli_main

        return cli_main()
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        dists = [dist for module, dist in EXTRA.items() if module.split(".")[0] == root]
        if not dists:
            raise
        return _hint(dists)
