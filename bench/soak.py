"""Soak: TCP both ways through wgpy <-> wireguard-go for minutes, under loss, reordering, rekeys and a move.

    sudo .venv/bin/python bench/soak.py                 # 10 minutes
    sudo .venv/bin/python bench/soak.py --minutes 3     # shorter

Not a test: it asserts nothing and prints what it saw.

Topology: namespaces ``wgs-<rand>-a`` (wgpy, the default native plane), ``-r``
(a router) and ``-b`` (Debian's wireguard-go), veth a<->r (10.201.1.0/24)
and r<->b (10.201.2.0/24), tunnel 10.202.0.1 <-> .2 (MTU 1420).  The ends'
veths have ``gso_max_segs 1``, so a UDP GSO train leaves as single datagrams
and the router sees each one.  Nothing leaves the namespaces.

Faults, all in the router's forward path (this kernel has no netem):
- loss: nftables ``numgen random mod 100 < LOSS drop`` on every datagram, both ways;
- reordering: of the datagrams not dropped, ``numgen random mod 100 < REORDER`` get
  ``meta priority set 1:20``, a slow HTB class (4 Mbit/s, a 16-packet pfifo) on the router's
  egress; every other datagram takes the 10 Gbit/s class.  The slow ones wait behind each
  other and arrive after datagrams sent later (up to ~45 ms late); when the slow queue is
  full they are dropped, which adds to the loss (both are reported from ``tc -s``);
- forced rekeys: every ``--rekey-every`` s one side's static key is rotated, alternating
  wgpy and wireguard-go: the other side adds the new public key as a peer (which takes the
  allowed IP), the side changes its private key, then the old peer is removed.  Each is a
  fresh handshake; on wgpy's side every other one is a peer removed and added under traffic.
  The sessions also rekey by themselves every 120 s (REKEY_AFTER_TIME);
- one roaming move: at ``--move-at`` of the run, side A (wgpy) changes its underlay address
  (10.201.1.1 -> 10.201.1.11, the old one deleted, the route restored); wgpy must send from
  the new address and wireguard-go follow it from the next authenticated datagram.
  ``--move b`` moves wireguard-go's side instead (10.201.2.2 -> .12), for wgpy to follow:
  Debian's wireguard-go 0.0.20220316 then keeps sending from the deleted address ("network is
  unreachable": its sticky source is only replaced by a datagram to its new address), so
  nothing reaches A until a key rotation gives A the new endpoint -- a stall of wireguard-go's
  making, the same with ``--kind-a wggo``.

Reported: per stream the bytes sent and delivered and whether the SHA-256 of what arrived
matches what was sent, the longest stall (longest gap between two reads at the receiver;
the five longest with their time next to the event log), the handshakes (completions seen
via ``wg show latest-handshakes``, polled every second, and initiations/responses counted on
the router), the follower's endpoint for the mover at the end, the fault counters, and the
RSS of both daemons when traffic starts and at the end.  ``--kind-a wggo`` runs the same
soak with wireguard-go on both sides, as the baseline.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench import common  # noqa: E402
from bench.common import PYTHON, Netns, gen_private, proc_rss, rand_suffix, run, wait_for  # noqa: E402
from bench.tunnel import KINDS, LABEL, PORTS, TUNNEL, Daemon, configure_pair, start_daemon  # noqa: E402

A_ADDR, B_ADDR, A_MOVED, B_MOVED = "10.201.1.1", "10.201.2.2", "10.201.1.11", "10.201.2.12"
R_A, R_B = "10.201.1.254", "10.201.2.254"
STREAM_PORTS = (5301, 5302)
STREAM = str(Path(__file__).resolve().parent / "soak_stream.py")


def log(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


class Lab:
    """The three namespaces, the faults on the router, and the two daemons."""

    def __init__(self, loss: int, reorder: int, kind_a: str = "wgpy") -> None:
        import tempfile

        tag = rand_suffix()
        self.tag = tag
        self.logdir = Path(tempfile.mkdtemp(prefix=f"wgsoak-{tag}-"))
        common.register_tmpdir(self.logdir)
        self.a, self.r, self.b = (Netns(f"wgs-{tag}-{s}") for s in "arb")
        self.va, self.vra, self.vrb, self.vb = (f"wgsv{tag}{s}" for s in ("a", "ra", "rb", "b"))
        run(["ip", "link", "add", self.va, "netns", self.a.name, "type", "veth", "peer", "name", self.vra,
             "netns", self.r.name])
        run(["ip", "link", "add", self.vb, "netns", self.b.name, "type", "veth", "peer", "name", self.vrb,
             "netns", self.r.name])
        for ns, dev, addr, gw, far in ((self.a, self.va, A_ADDR, R_A, "10.201.2.0/24"),
                                       (self.b, self.vb, B_ADDR, R_B, "10.201.1.0/24")):
            ns.run("ip", "link", "set", dev, "gso_max_segs", "1")
            ns.run("sysctl", "-qw", f"net.ipv4.conf.{dev}.promote_secondaries=1")
            ns.run("ip", "addr", "add", f"{addr}/24", "dev", dev)
            ns.run("ip", "link", "set", dev, "up")
            ns.run("ip", "route", "add", far, "via", gw)
        self.r.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        for dev, addr in ((self.vra, R_A), (self.vrb, R_B)):
            self.r.run("ip", "addr", "add", f"{addr}/24", "dev", dev)
            self.r.run("ip", "link", "set", dev, "up")
            self._slow_class(dev)
        self.r.run("nft", "-f", "-", input=self._ruleset(loss, reorder))
        self.daemons: list[Daemon] = []
        self.keys = [gen_private(), gen_private()]
        self.a_addr, self.b_addr = A_ADDR, B_ADDR
        self.kind_a = kind_a

    def _slow_class(self, dev: str) -> None:
        r = self.r
        r.run("tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", "r2q", "100000")
        r.run("tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
        r.run("tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:20", "htb", "rate", "4mbit",
              "ceil", "4mbit", "burst", "1600")
        r.run("tc", "qdisc", "add", "dev", dev, "parent", "1:20", "handle", "20:", "pfifo", "limit", "16")

    def _ruleset(self, loss: int, reorder: int) -> str:
        rules = []
        for d, iif in (("ab", self.vra), ("ba", self.vrb)):
            rules += [
                f'iifname "{iif}" meta l4proto udp @th,64,32 0x01000000 counter name "init_{d}"',
                f'iifname "{iif}" meta l4proto udp @th,64,32 0x02000000 counter name "resp_{d}"',
                f'iifname "{iif}" meta l4proto udp numgen random mod 100 < {loss} counter name "lost_{d}" drop',
                f'iifname "{iif}" meta l4proto udp numgen random mod 100 < {reorder} counter name "slow_{d}" '
                "meta priority set 1:20",
                f'iifname "{iif}" meta l4proto udp counter name "udp_{d}"',
            ]
        counters = "".join(f"  counter {k}_{d} {{}}\n" for k in ("init", "resp", "lost", "slow", "udp")
                           for d in ("ab", "ba"))
        body = "".join(f"    {r}\n" for r in rules)
        return (f"table inet wgsoak {{\n{counters}  chain faults {{\n"
                f"    type filter hook forward priority 0; policy accept;\n{body}  }}\n}}\n")

    def counters(self) -> dict[str, int]:
        out = json.loads(self.r.run("nft", "-j", "list", "counters", "table", "inet", "wgsoak").stdout)
        res = {}
        for item in out.get("nftables", []):
            c = item.get("counter")
            if c and "name" in c:
                res[c["name"]] = int(c["packets"])
        return res

    def slow_stats(self) -> dict[str, dict[str, int]]:
        """Per router egress: the slow class's sent / dropped / overlimits (from ``tc -s -j``)."""
        res = {}
        for name, dev in (("to-b", self.vrb), ("to-a", self.vra)):
            text = self.r.run("tc", "-s", "class", "show", "dev", dev, "classid", "1:20").stdout
            m = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", text)
            if m:
                res[name] = dict(zip(("packets", "drops", "overlimits"), map(int, m.groups())))
        return res

    # ---------------------------------------------------------------- the tunnel
    def start(self) -> None:
        self.daemons = [start_daemon(self.kind_a, self.a, f"wgs{self.tag}a", self.logdir),
                        start_daemon("wggo", self.b, f"wgs{self.tag}b", self.logdir)]
        configure_pair(self.daemons, self.keys, (f"{A_ADDR}:{PORTS[0]}", f"{B_ADDR}:{PORTS[1]}"), self.logdir)
        ok = wait_for(lambda: self.a.run("ping", "-n", "-c", "1", "-W", "1", TUNNEL[1], check=False,
                                         timeout=5).returncode == 0 or not self.alive(), 30, 0.2)
        if not ok or not self.alive():
            raise RuntimeError("tunnel did not come up: " + self.dead())

    def alive(self) -> bool:
        return all(d.alive() for d in self.daemons)

    def dead(self) -> str:
        return "; ".join(f"{d.kind} exited ({d.proc.returncode}): {d.log_tail(300)}"
                         for d in self.daemons if not d.alive()) or "both alive"

    def latest_handshakes(self) -> list[int]:
        out = []
        for d in self.daemons:
            res = d.ns.run("wg", "show", d.ifname, "latest-handshakes", check=False, timeout=10)
            stamps = [int(line.split()[1]) for line in res.stdout.splitlines() if len(line.split()) == 2]
            out.append(max(stamps, default=0))
        return out

    def rotate(self, side: int) -> None:
        """Rotate ``side``'s static key (0 = wgpy, 1 = wireguard-go) as described in the module doc."""
        me, other = self.daemons[side], self.daemons[1 - side]
        old_pub = self.keys[side][1]
        new = gen_private()
        key_file = self.logdir / f"key-{side}-{time.monotonic_ns()}"
        key_file.write_text(new[0] + "\n")
        key_file.chmod(0o600)
        endpoint = f"{self.a_addr}:{PORTS[0]}" if side == 0 else f"{self.b_addr}:{PORTS[1]}"
        other.ns.run("wg", "set", other.ifname, "peer", new[1], "allowed-ips", f"{TUNNEL[side]}/32",
                     "endpoint", endpoint)
        me.ns.run("wg", "set", me.ifname, "private-key", str(key_file))
        other.ns.run("wg", "set", other.ifname, "peer", old_pub, "remove")
        self.keys[side] = new

    def move(self, side: str) -> tuple[str, str]:
        """Side ``a`` or ``b`` changes its underlay address (the old one deleted); returns (old, new)."""
        ns, dev, old, new, far, gw = ((self.a, self.va, A_ADDR, A_MOVED, "10.201.2.0/24", R_A) if side == "a"
                                      else (self.b, self.vb, B_ADDR, B_MOVED, "10.201.1.0/24", R_B))
        ns.run("ip", "addr", "add", f"{new}/24", "dev", dev)
        ns.run("ip", "addr", "del", f"{old}/24", "dev", dev)
        ns.run("ip", "route", "replace", far, "via", gw)  # the route went with the old address
        if side == "a":
            self.a_addr = new
        else:
            self.b_addr = new
        return old, new

    def endpoint_of(self, side: int) -> str:
        """The endpoint daemon ``side`` (0 = A, 1 = B) has for its peer."""
        d = self.daemons[side]
        fields = d.ns.run("wg", "show", d.ifname, "endpoints", check=False).stdout.split()
        return fields[-1] if fields else "?"


def soak(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60.0
    lab = Lab(args.loss, args.reorder, args.kind_a)
    log(f"namespaces wgs-{lab.tag}-a/r/b; starting {args.kind_a} and wireguard-go")
    lab.start()
    log("tunnel up; starting the streams")
    out = {k: str(lab.logdir / f"{k}.json") for k in ("recv_ab", "recv_ba", "send_ab", "send_ba")}
    procs = [
        lab.b.popen([PYTHON, STREAM, "recv", TUNNEL[1], str(STREAM_PORTS[0]), out["recv_ab"]]),
        lab.a.popen([PYTHON, STREAM, "recv", TUNNEL[0], str(STREAM_PORTS[1]), out["recv_ba"]]),
    ]
    time.sleep(0.5)
    t0 = time.monotonic()
    procs += [
        lab.a.popen([PYTHON, STREAM, "send", TUNNEL[1], str(STREAM_PORTS[0]), str(seconds), "1", out["send_ab"]]),
        lab.b.popen([PYTHON, STREAM, "send", TUNNEL[0], str(STREAM_PORTS[1]), str(seconds), "2", out["send_ba"]]),
    ]
    time.sleep(2.0)
    rss_start = [proc_rss(d.pid) for d in lab.daemons]
    events: list[tuple[float, str]] = []
    handshakes = [0, 0]
    last_hs = [0, 0]  # the first handshake counts too
    moved = False
    next_rotation = args.rekey_every if args.rekey_every > 0 else float("inf")
    rotations = 0
    next_report = 30.0
    while time.monotonic() - t0 < seconds and lab.alive():
        time.sleep(1.0)
        t = time.monotonic() - t0
        hs = lab.latest_handshakes()
        for i in (0, 1):
            if hs[i] != last_hs[i] and hs[i]:
                handshakes[i] += 1
        last_hs = hs
        if not moved and t >= args.move_at * seconds:
            old, new = lab.move(args.move)
            moved = True
            events.append((t, f"{args.move.upper()}'s underlay address {old} -> {new}"))
            log(f"t={t:.0f}s: moved {args.move.upper()} to {new}")
        if t >= next_rotation:
            side = rotations % 2
            lab.rotate(side)
            rotations += 1
            next_rotation += args.rekey_every
            events.append((t, f"{'A' if side == 0 else 'B'} rotated its static key"))
            log(f"t={t:.0f}s: rotated {'A' if side == 0 else 'B'}'s key")
        if t >= next_report:
            next_report += 30.0
            log(f"t={t:.0f}s: alive, handshakes seen A={handshakes[0]} B={handshakes[1]}")
    alive_at_end = lab.alive()
    rss_end = [proc_rss(d.pid) if d.alive() else 0 for d in lab.daemons]
    follower = 1 if args.move == "a" else 0
    endpoint = lab.endpoint_of(follower) if alive_at_end else "?"
    log("time is up; waiting for the streams to finish")
    for p in procs:
        try:
            p.wait(timeout=300)  # a stream gives up after 120 s without progress (soak_stream.STALL_LIMIT)
        except subprocess.TimeoutExpired:  # reported as "no result" below
            common.stop_proc(p)
    results = {}
    for k, path in out.items():
        try:
            results[k] = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            results[k] = {"bytes": 0, "error": "no result", "sha256": ""}
    return {
        "kind_a": args.kind_a, "minutes": args.minutes, "loss": args.loss, "reorder": args.reorder, "t0": t0,
        "streams": results, "handshakes_seen": handshakes, "events": events, "rotations": rotations,
        "counters": lab.counters(), "slow": lab.slow_stats(), "rss_start": rss_start, "rss_end": rss_end,
        "alive": alive_at_end, "dead": "" if alive_at_end else lab.dead(), "move": args.move, "follower_endpoint": endpoint,
    }


def report(res: dict[str, Any]) -> str:
    mb = 1e6
    a = LABEL[res["kind_a"]]
    lines = [f"## Soak: {a} (A) <-> wireguard-go (B, Debian's), {res['minutes']:g} min, "
             f"loss {res['loss']}%, reordering {res['reorder']}% of the rest", ""]
    lines.append("| stream | sent MB | delivered MB | SHA-256 | Mbit/s | longest stall | at t= | error |")
    lines.append("|---|---|---|---|---|---|---|---|")
    t0 = res["t0"]
    secs = res["minutes"] * 60
    for d, label in (("ab", f"{a} -> wireguard-go"), ("ba", f"wireguard-go -> {a}")):
        s, r = res["streams"][f"send_{d}"], res["streams"][f"recv_{d}"]
        match = "match" if s.get("sha256") and s.get("sha256") == r.get("sha256") and s["bytes"] == r["bytes"] \
            else "MISMATCH"
        stalls = r.get("stalls") or [[0.0, t0]]
        longest = stalls[0]
        lines.append(f"| {label} | {s['bytes'] / mb:.1f} | {r['bytes'] / mb:.1f} | {match} | "
                     f"{r['bytes'] * 8 / secs / 1e6:.1f} | {longest[0]:.2f} s | {longest[1] - t0:.0f} s | "
                     f"{s.get('error') or r.get('error') or ''} |")
    lines.append("")
    for d, label in (("ab", f"{a} -> wireguard-go"), ("ba", f"wireguard-go -> {a}")):
        stalls = res["streams"][f"recv_{d}"].get("stalls") or []
        lines.append(f"- stalls {label}: " + ", ".join(f"{g:.2f} s at t={at - t0:.0f} s" for g, at in stalls))
    c = res["counters"]
    lines.append("- events: " + "; ".join(f"t={t:.0f} s {e}" for t, e in res["events"]))
    lines.append(f"- handshakes completed (latest-handshake changes, 1 s polls): {a} {res['handshakes_seen'][0]}, "
                 f"wireguard-go {res['handshakes_seen'][1]}; forced key rotations {res['rotations']}, natural "
                 f"rekeys due every 120 s")
    lines.append(f"- on the router: initiations A->B {c.get('init_ab', 0)}, B->A {c.get('init_ba', 0)}; "
                 f"responses A->B {c.get('resp_ab', 0)}, B->A {c.get('resp_ba', 0)}")
    for d, label in (("ab", "A->B"), ("ba", "B->A")):
        udp = c.get(f"udp_{d}", 0) + c.get(f"lost_{d}", 0)
        lost = c.get(f"lost_{d}", 0)
        slow = c.get(f"slow_{d}", 0)
        lines.append(f"- datagrams {label}: {udp}, dropped {lost} ({100 * lost / max(udp, 1):.1f}%), "
                     f"sent the slow way {slow} ({100 * slow / max(udp, 1):.1f}%)")
    for name, st in res["slow"].items():
        lines.append(f"- slow class {name}: sent {st['packets']}, dropped when full {st['drops']}, "
                     f"overlimits (waited) {st['overlimits']}")
    moved_to = f"{A_MOVED}:{PORTS[0]}" if res["move"] == "a" else f"{B_MOVED}:{PORTS[1]}"
    follower = "wireguard-go (B)" if res["move"] == "a" else f"{a} (A)"
    lines.append(f"- {follower}'s endpoint for its peer at the end: {res['follower_endpoint']} "
                 f"(the mover's new address: {moved_to})")
    names = (a, "wireguard-go")
    lines.append("- RSS: " + "; ".join(
        f"{names[i]} {res['rss_start'][i] / 2**20:.1f} MiB at start, {res['rss_end'][i] / 2**20:.1f} MiB at end"
        for i in (0, 1)))
    lines.append(f"- both daemons alive at the end: {'yes' if res['alive'] else 'NO: ' + res['dead']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    ap.add_argument("--loss", type=int, default=5, help="percent of datagrams dropped, each way (default 5)")
    ap.add_argument("--reorder", type=int, default=5, help="percent of the rest sent the slow way (default 5)")
    ap.add_argument("--rekey-every", type=float, default=150.0,
                    help="seconds between forced key rotations, 0 = none (default 150: longer than "
                         "REKEY_AFTER_TIME, so the sessions also rekey by themselves in between)")
    ap.add_argument("--move", choices=("a", "b"), default="a",
                    help="the side that changes its underlay address (default a, wgpy's; see the module doc)")
    ap.add_argument("--move-at", type=float, default=0.5, help="fraction of the run at which to move (default 0.5)")
    ap.add_argument("--kind-a", choices=KINDS, default="wgpy",
                    help="side A's daemon (default wgpy; wggo gives the wireguard-go <-> wireguard-go baseline)")
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--keep-logs", action="store_true", help="keep daemon logs and stream results")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or not 0 <= args.loss <= 100 or not 0 <= args.reorder <= 100 or not 0 < args.move_at < 1:
        ap.error("--minutes > 0, --loss/--reorder in 0..100, --move-at in (0, 1)")
    common.keep_logs = args.keep_logs
    common.install_cleanup()
    try:
        res = soak(args)
    finally:
        common.cleanup()
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
