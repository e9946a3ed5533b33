"""Build shim: compiles the optional native data plane (``wgpy/_native``) via cffi.

Everything else about the package is in ``pyproject.toml``.  The native build
is optional: when it fails (no compiler, no OpenSSL headers) installation
still succeeds with a warning and wgpy uses its pure-Python data plane.
``WGPY_NATIVE_BUILD=0`` skips the build.

The native module is built for the stable ABI (cffi compiles with
``Py_LIMITED_API``, so the file is ``_wgpy_native.abi3.so``) and the wheel is
tagged to match: ``cp311-abi3-<platform>``, one wheel for CPython 3.11 and
later.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A build_ext whose failures are warnings, not errors."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "pure path"
            self._warn(exc)

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        sys.stderr.write(f"WARNING: wgpy native data plane not built ({exc}); the pure-Python path will be used\n")


kwargs: dict[str, object] = {"cmdclass": {"build_ext": OptionalBuildExt}}
if os.environ.get("WGPY_NATIVE_BUILD", "1") != "0":
    kwargs["cffi_modules"] = ["wgpy/_native/_build.py:ffibuilder"]
    kwargs["options"] = {"bdist_wheel": {"py_limited_api": "cp311"}}

setup(**kwargs)  # type: ignore[arg-type]
