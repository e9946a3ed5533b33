"""``kubespan.netlink``: pyroute2's ``IPRoute`` without the package catalogue, the rest of the package on demand.

Each case runs in a fresh interpreter (the import state of this one is the test runner's); the real class
then dumps this namespace's links through a real netlink socket.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    result: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def test_the_class_comes_without_the_catalogue_and_works() -> None:
    out = _run("""
        import json, sys
        from kubespan.netlink import iproute_class
        cls = iproute_class()
        with cls() as ipr:
            names = [link.get("ifname") for link in ipr.get_links()]
        print(json.dumps({"name": f"{cls.__module__}.{cls.__qualname__}", "lo": "lo" in names,
                          "ndb": "pyroute2.ndb.main" in sys.modules, "ipdb": "pyroute2.ipdb" in sys.modules}))
    """)
    assert out == {"name": "pyroute2.iproute.linux.IPRoute", "lo": True, "ndb": False, "ipdb": False}


def test_the_rest_of_the_package_is_there_when_asked_for() -> None:
    out = _run("""
        import json, sys
        from kubespan.netlink import iproute_class
        cls = iproute_class()
        import pyroute2
        version = pyroute2.__version__
        from pyroute2 import NDB, IPRoute
        from pyroute2.ndb.main import NDB as ndb_class
        print(json.dumps({"same": IPRoute is cls, "ndb": NDB is ndb_class, "version": bool(version),
                          "all": "IPRoute" in [m.__name__ for m in pyroute2.modules]}))
    """)
    assert out == {"same": True, "ndb": True, "version": True, "all": True}


def test_a_package_imported_before_is_used_as_it_is() -> None:
    out = _run("""
        import json
        import pyroute2
        from kubespan.netlink import iproute_class
        print(json.dumps({"same": iproute_class() is pyroute2.IPRoute, "hook": "__getattr__" in vars(pyroute2)}))
    """)
    assert out == {"same": True, "hook": False}


def test_prepare_freezes_what_lives_and_leaves_the_collector_on() -> None:
    out = _run("""
        import gc, json, sys
        from kubespan.netlink import prepare
        prepare()
        print(json.dumps({"frozen": gc.get_freeze_count() > 0, "enabled": gc.isenabled(),
                          "loaded": "pyroute2.iproute.linux" in sys.modules}))
    """)
    assert out == {"frozen": True, "enabled": True, "loaded": True}


@pytest.mark.parametrize("first", ["from pyroute2 import NDB", "import pyroute2.ndb.main"])
def test_either_order_of_two_users_gives_one_package(first: str) -> None:
    out = _run(f"""
        import json, sys
        from kubespan.netlink import iproute_class
        cls = iproute_class()
        {first}
        import pyroute2
        print(json.dumps({{"same": pyroute2.IPRoute is cls, "one": sys.modules["pyroute2"] is pyroute2}}))
    """)
    assert out == {"same": True, "one": True}
