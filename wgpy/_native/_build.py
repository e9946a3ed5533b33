"""cffi (API mode) builder for the native data plane: ``wgpy._native._wgpy_native``.

Used by ``setup.py`` (``cffi_modules``) at install time, or directly for an
in-place development build::

    python wgpy/_native/_build.py      # writes wgpy/_native/_wgpy_native.*.so

The cdef is the part of ``wgpy_native.h`` between the CDEF markers; the
package version is compiled in (``wgdp_version()``) so the binding can refuse
a stale build.  Links OpenSSL's libcrypto (EVP ChaCha20-Poly1305 and X25519).
"""

from __future__ import annotations

import os
import re
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCES = ["wgdp_crypto.c", "wgdp_ctx.c", "wgdp_io.c", "wgdp_offload.c", "wgdp_mbox.c", "wgdp_routes.c", "wgdp_hsgate.c",
           "wgdp_blake2s.c", "wgdp_noise.c", "wgdp_queues.c"]


def _version() -> str:
    with open(os.path.join(ROOT, "wgpy", "_version.py"), encoding="utf-8") as f:
        match = re.search(r'^__version__\s*=\s*"([^"]+)"', f.read(), re.M)
    if not match:
        raise RuntimeError("wgpy/_version.py has no __version__")
    return match.group(1)


def _cdef() -> str:
    with open(os.path.join(HERE, "wgpy_native.h"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("/* CDEF-BEGIN */") + len("/* CDEF-BEGIN */")
    return text[start:text.index("/* CDEF-END */")]


def _rel(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def make_ffi(absolute: bool = False, cflags: tuple[str, ...] = (), ldflags: tuple[str, ...] = ()) -> FFI:
    """The FFI builder; paths relative to the cwd (setup.py) or absolute (direct build).

    ``cflags``/``ldflags`` come after the defaults (the sanitizer builds of
    ``tests/native/test_sanitizers.py`` pass ``-O1 -fsanitize=...`` here).
    """
    place = (lambda p: p) if absolute else _rel
    ffi = FFI()
    ffi.cdef(_cdef())
    ffi.set_source(
        "wgpy._native._wgpy_native",
        '#include "wgpy_native.h"\n',
        sources=[place(os.path.join(HERE, name)) for name in SOURCES],
        include_dirs=[place(HERE)],
        libraries=["crypto", "pthread"],
        define_macros=[("WGDP_VERSION", '"%s"' % _version()), ("_GNU_SOURCE", "1")],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", *cflags],
        extra_link_args=list(ldflags),
    )
    return ffi


def build_into(root: str, cflags: tuple[str, ...] = (), ldflags: tuple[str, ...] = ()) -> str:
    """Compile a variant of the module into ``root``/wgpy/_native/ (beside a copy of the package);
    returns the path of the shared object.  The sources stay where they are."""
    import glob
    import shutil
    tmp = os.path.join(root, "build", "cffi")
    make_ffi(absolute=True, cflags=cflags, ldflags=ldflags).compile(tmpdir=tmp)
    built = glob.glob(os.path.join(tmp, "wgpy", "_native", "_wgpy_native*.so")) + \
        glob.glob(os.path.join(tmp, "_wgpy_native*.so"))
    target = os.path.join(root, "wgpy", "_native", os.path.basename(built[0]))
    shutil.copy2(built[0], target)
    return target


ffibuilder = make_ffi()

if __name__ == "__main__":
    os.chdir(ROOT)
    make_ffi(absolute=True).compile(tmpdir=os.path.join(ROOT, "build", "cffi"), verbose="-v" in sys.argv)
    import glob
    import shutil
    for built in glob.glob(os.path.join(ROOT, "build", "cffi", "wgpy", "_native", "_wgpy_native*.so")) + \
            glob.glob(os.path.join(ROOT, "build", "cffi", "_wgpy_native*.so")):
        target = os.path.join(HERE, os.path.basename(built))
        shutil.copy2(built, target + ".tmp")
        os.replace(target + ".tmp", target)  # a new inode: running processes keep the old mapping
        print("built", target)
