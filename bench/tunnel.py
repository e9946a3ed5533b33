"""Two namespaces joined by a veth pair, and a tunnel daemon in each.

Contract: ``Underlay`` creates namespaces ``wgb-<rand>-a``/``-b`` with a veth
pair carrying 10.201.0.0/24 (addresses exist only inside them).  ``Tunnel``
starts one daemon per side (``wggo`` = Debian's wireguard-go, ``wggo-modern`` =
upstream wireguard-go 0.0.20250522 with batching and offloads, ``wgpy``,
``wgpy-pure`` = wgpy with ``WGPY_NATIVE=0``, ``wgpy-nooff`` = native wgpy
with TUN virtio-net offload and UDP GSO/GRO switched off, ``wgpy-1q`` = native
wgpy with one TUN queue (``WGPY_TUN_MULTIQUEUE=0``), ``wgpy-evp`` = native wgpy
with the AEAD through EVP (``WGPY_AEAD_DIRECT=0``), or ``wgpy-ref`` = the wgpy
of another checkout, ``$WGPY_BENCH_REF``, with its native module built, for a
before/after in one run with interleaved rounds; ``wgpy-ref-nooff`` the same
without offloads; ``wgpy-nooff-1q`` no offloads and one queue), configures them with
``wg setconf`` (tunnel 10.202.0.0/24, MTU 1420), waits for a handshake and
stops them again.  ``RawPath`` is the same interface without any tunnel:
traffic goes straight over the veth underlay (the ceiling).  Interface names
carry a random suffix.  No traffic leaves the namespaces.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from pathlib import Path

from .common import (PYTHON, REPO, SOCK_DIR, Netns, gen_private, rand_suffix, register_sock, register_tmpdir, run,
                     stop_proc, wait_for)

UNDER = ("10.201.0.1", "10.201.0.2")
TUNNEL = ("10.202.0.1", "10.202.0.2")
MTU = 1420
PORTS = (51001, 51002)

MODERN_WGGO = Path(os.environ.get("WGPY_BENCH_WGGO_MODERN",
                                  "/work/shared/reference/wireguard-go-0.0.20250522/wireguard-go"))
RAW = "veth"  # the pseudo-pairing "veth" (no tunnel: iperf3/ping over the underlay)
KINDS = ("wggo", "wggo-modern", "wgpy", "wgpy-pure", "wgpy-nooff", "wgpy-1q", "wgpy-evp", "wgpy-ref", "wgpy-ref-nooff",
         "wgpy-nooff-1q")
LABEL = {"wggo": "wggo", "wggo-modern": "wggo[modern]", "wgpy": "wgpy", "wgpy-pure": "wgpy[pure]",
         "wgpy-nooff": "wgpy[no-offload]", "wgpy-1q": "wgpy[1 queue]", "wgpy-evp": "wgpy[EVP]",
         "wgpy-ref": "wgpy[ref]", "wgpy-ref-nooff": "wgpy[ref,no-offload]",
         "wgpy-nooff-1q": "wgpy[no-offload,1 queue]"}
NO_OFFLOAD = {"WGPY_TUN_OFFLOAD": "0", "WGPY_UDP_GSO": "0", "WGPY_UDP_GRO": "0"}
KIND_ENV = {"wgpy-pure": {"WGPY_NATIVE": "0"}, "wgpy-nooff": NO_OFFLOAD, "wgpy-1q": {"WGPY_TUN_MULTIQUEUE": "0"},
            "wgpy-evp": {"WGPY_AEAD_DIRECT": "0"}, "wgpy-ref-nooff": NO_OFFLOAD,
            "wgpy-nooff-1q": {**NO_OFFLOAD, "WGPY_TUN_MULTIQUEUE": "0"}}
SWITCHES = ("WGPY_NATIVE", *NO_OFFLOAD, "WGPY_TUN_MULTIQUEUE", "WGPY_TUN_QUEUES", "WGPY_AEAD_DIRECT")


def checkout(kind: str) -> Path:
    """The wgpy tree a daemon of ``kind`` runs: this one, or ``$WGPY_BENCH_REF`` for ``wgpy-ref``."""
    if not kind.startswith("wgpy-ref"):
        return REPO
    ref = os.environ.get("WGPY_BENCH_REF")
    if not ref or not (Path(ref) / "wgpy" / "__init__.py").exists():
        raise RuntimeError("wgpy-ref needs WGPY_BENCH_REF=<a wgpy checkout with its native module built>")
    return Path(ref)


def daemon_argv(kind: str, ifname: str) -> list[str]:
    if kind == "wggo":
        return ["wireguard-go", "-f", ifname]
    if kind == "wggo-modern":
        if not os.access(MODERN_WGGO, os.X_OK):
            raise RuntimeError(f"no modern wireguard-go at {MODERN_WGGO} (set WGPY_BENCH_WGGO_MODERN)")
        return [str(MODERN_WGGO), "-f", ifname]
    return [PYTHON, "-m", "wgpy", "-f", ifname]


def daemon_env(kind: str) -> dict[str, str]:
    env = dict(os.environ, LOG_LEVEL="error", WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1",
               PYTHONPATH=str(checkout(kind) if kind.startswith("wgpy") else REPO))
    env.pop("WG_PROCESS_FOREGROUND", None)
    for k in SWITCHES:
        env.pop(k, None)
    env.update(KIND_ENV.get(kind, {}))
    return env


@dataclasses.dataclass
class Daemon:
    kind: str
    ns: Netns
    ifname: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def sock(self) -> Path:
        return SOCK_DIR / f"{self.ifname}.sock"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 600) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        stop_proc(self.proc)
        try:
            self.sock.unlink()
        except OSError:
            pass


def start_daemon(kind: str, ns: Netns, ifname: str, logdir: Path, timeout: float = 20) -> Daemon:
    """Start a foreground daemon in ``ns`` (``ip netns exec`` execs, so the pid is the daemon's)."""
    log = logdir / f"{kind}-{ifname}.log"
    register_sock(SOCK_DIR / f"{ifname}.sock")
    with open(log, "wb") as out:
        proc = ns.popen(daemon_argv(kind, ifname), stdout=out, stderr=subprocess.STDOUT, env=daemon_env(kind),
                        cwd=str(checkout(kind)), stdin=subprocess.DEVNULL)
    d = Daemon(kind, ns, ifname, proc, log)
    if not wait_for(lambda: d.sock.exists() or not d.alive(), timeout) or not d.alive():
        d.stop()
        raise RuntimeError(f"{kind} did not start: {d.log_tail()}")
    return d


def configure_pair(daemons: list[Daemon], keys: list[tuple[str, str]], endpoints: tuple[str, str],
                   logdir: Path) -> None:
    """Point each of two daemons at the other (``endpoints[i]``: where daemon i lives), tunnel
    addresses ``TUNNEL``, MTU ``MTU``, and bring the links up."""
    for i, d in enumerate(daemons):
        o = 1 - i
        conf = (f"[Interface]\nPrivateKey = {keys[i][0]}\nListenPort = {PORTS[i]}\n\n"
                f"[Peer]\nPublicKey = {keys[o][1]}\nAllowedIPs = {TUNNEL[o]}/32\n"
                f"Endpoint = {endpoints[o]}\n")
        path = logdir / f"{d.ifname}.conf"
        path.write_text(conf)
        path.chmod(0o600)
        d.ns.run("wg", "setconf", d.ifname, str(path))
        d.ns.run("ip", "link", "set", d.ifname, "mtu", str(MTU))
        d.ns.run("ip", "addr", "add", f"{TUNNEL[i]}/24", "dev", d.ifname)
        d.ns.run("ip", "link", "set", d.ifname, "up")


class Underlay:
    """The two namespaces and the veth pair between them."""

    def __init__(self) -> None:
        tag = rand_suffix()
        self.a = Netns(f"wgb-{tag}-a")
        self.b = Netns(f"wgb-{tag}-b")
        va, vb = f"wgbv{tag}a", f"wgbv{tag}b"
        run(["ip", "link", "add", va, "netns", self.a.name, "type", "veth", "peer", "name", vb,
             "netns", self.b.name])
        for ns, dev, addr in ((self.a, va, UNDER[0]), (self.b, vb, UNDER[1])):
            ns.run("ip", "addr", "add", f"{addr}/24", "dev", dev)
            ns.run("ip", "link", "set", dev, "up")
        self.tag = tag
        self.logdir = Path(tempfile.mkdtemp(prefix=f"wgbench-{tag}-"))
        register_tmpdir(self.logdir)
        self.counter = 0

    def ifname(self, side: str) -> str:
        self.counter += 1
        return f"wgb{self.tag}{self.counter}{side}"[:15]


class RawPath:
    """No tunnel at all: A reaches B's underlay address over the veth pair (the ceiling row)."""

    dst = UNDER[1]
    kinds = (RAW, RAW)

    def __init__(self, under: Underlay) -> None:
        self.under = under
        self.daemons: list[Daemon] = []

    def alive(self) -> bool:
        return True

    def dead(self) -> str:
        return ""

    def stop(self) -> None:
        pass


class Tunnel:
    """A configured, handshaken tunnel: side A (iperf3 client) and side B (server)."""

    dst = TUNNEL[1]

    def __init__(self, under: Underlay, kind_a: str, kind_b: str) -> None:
        self.under = under
        self.kinds = (kind_a, kind_b)
        self.daemons: list[Daemon] = []
        try:
            self._setup()
        except BaseException:
            self.stop()
            raise

    @property
    def a(self) -> Daemon:
        return self.daemons[0]

    @property
    def b(self) -> Daemon:
        return self.daemons[1]

    def _setup(self) -> None:
        u = self.under
        for kind, ns, side in ((self.kinds[0], u.a, "a"), (self.kinds[1], u.b, "b")):
            self.daemons.append(start_daemon(kind, ns, u.ifname(side), u.logdir))
        keys = [gen_private(), gen_private()]
        configure_pair(self.daemons, keys, (f"{UNDER[0]}:{PORTS[0]}", f"{UNDER[1]}:{PORTS[1]}"), u.logdir)
        ok = wait_for(lambda: self._ping_once() or not all(d.alive() for d in self.daemons), 20, 0.2)
        if not ok or not all(d.alive() for d in self.daemons):
            raise RuntimeError("tunnel did not come up: " + " | ".join(
                f"{d.kind}: alive={d.alive()} {d.log_tail(300)}" for d in self.daemons))

    def _ping_once(self) -> bool:
        res = self.under.a.run("ping", "-n", "-c", "1", "-W", "1", TUNNEL[1], check=False, timeout=5)
        return res.returncode == 0

    def alive(self) -> bool:
        return all(d.alive() for d in self.daemons)

    def dead(self) -> str:
        """Which daemon exited, with its exit status (negative = killed by that signal) and log tail."""
        return "; ".join(f"{d.kind} ({'A' if i == 0 else 'B'}) exited with status {d.proc.returncode}"
                         + (f": {d.log_tail(200)}" if d.log_tail(200) else " (empty log)")
                         for i, d in enumerate(self.daemons) if not d.alive())

    def stop(self) -> None:
        for d in self.daemons:
            d.stop()
