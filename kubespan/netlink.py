"""pyroute2 for the agent: its rtnetlink socket class, imported at a fraction of the package's cost.

Contract: ``iproute_class()`` returns pyroute2's ``IPRoute`` (the class ``from pyroute2 import IPRoute``
gives). The package's ``__init__`` imports every API pyroute2 has (NDB, IPDB, conntrack, nl80211, ipset,
plan9, ...: ~60 modules the agent never uses, ~40 % of the import's CPU). When nothing in the process has
imported ``pyroute2`` yet, ``iproute_class`` registers the package module without running its ``__init__``
and imports only ``pyroute2.iproute``; the first time anything else in the process asks the package for a
name that is not a submodule (``from pyroute2 import NDB``, ``pyroute2.__version__``), the ``__init__``
runs then (once, under a lock), so every other user still sees the whole package. If pyroute2 ever moves
the class, the plain ``from pyroute2 import IPRoute`` is used.

``prepare()`` is what the agent's netlink thread runs at start: the import above, with the collector's
permanent generation (``gc.freeze``) taking every object alive before and after it. The agent's modules
and pyroute2's message classes live as long as the process; without this, the first full collection
(which the import's and the first dumps' allocations set off, in that thread) scans ~55,000 of them,
~30 ms of CPU per agent on a loaded machine. Objects made later are collected as before; cyclic
garbage not yet collected when ``prepare`` runs stays (it is meant to run once per process, at start).
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["iproute_class", "prepare"]

_PACKAGE = "pyroute2"
_lock = threading.Lock()


def _complete(module: types.ModuleType, spec: Any) -> None:
    """Run the package ``__init__`` on the module registered without it (once)."""
    with _lock:
        if module.__dict__.pop("__getattr__", None) is None:
            return  # done already (by another thread)
        spec.loader.exec_module(module)


def _register_bare() -> None:
    """``sys.modules['pyroute2']`` without its ``__init__`` run; names it defines are made on demand."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not an ordinary package: let the plain import decide
    module = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:
        # submodules are the import system's (it asks for them with hasattr before importing them)
        if name.startswith("__") and name not in ("__version__", "__all__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{_PACKAGE}.{name}") is not None:
            raise AttributeError(name)
        _complete(module, spec)
        return getattr(module, name)

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[_PACKAGE] = module


def iproute_class() -> Any:
    """pyroute2's ``IPRoute`` (see the module contract)."""
    with _lock:
        if _PACKAGE not in sys.modules:
            _register_bare()
    try:
        return importlib.import_module(f"{_PACKAGE}.iproute").IPRoute
    except (ImportError, AttributeError):
        from pyroute2 import IPRoute

        return IPRoute


def prepare() -> None:
    """Import pyroute2's ``IPRoute`` with the long-lived objects frozen (see the module contract)."""
    gc.freeze()
    iproute_class()
    gc.freeze()
