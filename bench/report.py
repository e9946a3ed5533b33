"""Format bench results as Markdown tables, with ratios to both wireguard-go builds.

Contract: pure formatting of the result dict built by ``run.py`` (no I/O
besides returning strings).  Every cell is an absolute figure.  The tunnel
table is printed twice: cells in the first carry ``×r`` = this column / the
wggo→wggo column (Debian's wireguard-go) of the same row, in the second
``×r`` = this column / wggo[modern]→wggo[modern] (upstream 0.0.20250522).
Anchor rows give each pairing's TCP throughput as a share of the bare veth
and its CPU per GB as a multiple of the AEAD floor.  A failed measurement
prints ``FAILED`` and its reason is listed below the table.
"""

from __future__ import annotations

import math
from typing import Any

BASE = "wggo:wggo"
MODERN = "wggo-modern:wggo-modern"
RAW = "veth"
ARROW = "→"


def pair_label(pair: str) -> str:
    from .tunnel import LABEL
    if pair == RAW:
        return "veth (no tunnel)"
    a, b = pair.split(":", 1)
    return f"{LABEL[a]}{ARROW}{LABEL[b]}"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not math.isnan(float(v)) else None


WINDOW_NOTE = "≤ 32 unanswered, all peers configured"

ROWS: list[tuple[str, str, str, str]] = [
    # (row title, test, field, unit)
    ("TCP 1 stream (Mbit/s)", "tcp1", "bps", "mbit"),
    ("TCP 4 streams (Mbit/s)", "tcp4", "bps", "mbit"),
    ("UDP received (Mbit/s)", "udp", "bps", "mbit"),
    ("UDP loss (%)", "udp", "lost_percent", "pct"),
    ("CPU s/GB, TCP 1 stream, both ends", "tcp1", "cpu_per_gb", "f2"),
    ("CPU s/GB, TCP 1 stream, A end (sender)", "tcp1", "cpu_a_per_gb", "f2"),
    ("CPU s/GB, TCP 1 stream, B end (receiver)", "tcp1", "cpu_b_per_gb", "f2"),
    ("CPU s/GB, TCP 4 streams, both ends", "tcp4", "cpu_per_gb", "f2"),
    ("CPU s/GB, UDP, both ends", "udp", "cpu_per_gb", "f2"),
    ("other CPU during TCP 1 stream (cores)*", "tcp1", "other_cores", "cores"),
    ("ping avg (ms)", "ping", "avg", "ms"),
    ("ping p50 (ms)", "ping", "p50", "ms"),
    ("ping p99 (ms)", "ping", "p99", "ms"),
    ("TCP 1 stream, share of bare veth", "anchors", "tcp1_of_veth", "share"),
    ("TCP 4 streams, share of bare veth", "anchors", "tcp4_of_veth", "share"),
    ("CPU s/GB TCP 1 stream both ends ÷ AEAD floor", "anchors", "cpu_over_floor", "times"),
]


def with_anchors(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pairs, each with an ``anchors`` entry: shares of the veth ceiling, multiple of the AEAD floor."""
    pairs: dict[str, dict[str, Any]] = {p: dict(v) for p, v in res.get("pairs", {}).items()}
    floor = _num((res.get("aead") or {}).get("floor_s_per_gb"))

    def val(p: str, test: str, field: str) -> float | None:
        r = pairs.get(p, {}).get(test)
        return _num(r.get(field)) if isinstance(r, dict) and "error" not in r else None

    for p in pairs:
        anchors: dict[str, Any] = {}
        for test in ("tcp1", "tcp4"):
            v, ceiling = val(p, test, "bps"), val(RAW, test, "bps")
            if v is not None and ceiling and p != RAW:
                anchors[f"{test}_of_veth"] = v / ceiling
        cpu = val(p, "tcp1", "cpu_per_gb")
        if cpu is not None and floor:
            anchors["cpu_over_floor"] = cpu / floor
        if anchors:
            pairs[p]["anchors"] = anchors
    return pairs


def _fmt(v: float, unit: str) -> str:
    if unit == "mbit":
        return f"{v / 1e6:.0f}"
    if unit == "ms":
        return f"{v * 1e3:.3f}"
    if unit == "pct":
        return f"{v:.1f}"
    if unit == "share":
        return f"{v * 100:.0f} %"
    if unit == "times":
        return f"×{v:.2f}"
    return f"{v:.2f}"


NO_RATIO = ("pct", "cores", "share", "times")


def tunnel_table(res: dict[str, Any], base_pair: str = BASE, extras: bool = True) -> tuple[str, list[str]]:
    """One table over all pairings, ratios to ``base_pair``; ``extras``: the footnote and thread counts too."""
    pairs = with_anchors(res)
    if not pairs:
        return "", []
    names = list(pairs)
    notes: list[str] = []
    lines = ["| metric | " + " | ".join(pair_label(p) for p in names) + " |",
             "|---|" + "---:|" * len(names)]
    for title, test, field, unit in ROWS:
        if not any(test in pairs[p] for p in names):
            continue
        if test == "anchors" and not any(field in pairs[p].get("anchors", {}) for p in names):
            continue  # e.g. no tcp4 in this run, or no veth column
        base_r = pairs.get(base_pair, {}).get(test, {})
        base = _num(base_r.get(field)) if isinstance(base_r, dict) else None
        cells = []
        for p in names:
            r = pairs[p].get(test)
            if r is None:
                cells.append("FAILED" if "error" in pairs[p] else "–")
                continue
            if "error" in r:
                cells.append("FAILED")
                note = f"{pair_label(p)} {test}: {r['error']}"
                if note not in notes:
                    notes.append(note)
                continue
            if r.get("failed_rounds"):
                note = (f"{pair_label(p)} {test}: {len(r['failed_rounds'])} round(s) failed, median of the "
                        f"{r.get('rounds')} others shown: {r['failed_rounds'][0]}")
                if note not in notes:
                    notes.append(note)
            v = _num(r.get(field))
            if v is None:
                cells.append("n/a")
                continue
            cell = _fmt(v, unit)
            if p != base_pair and base and unit not in NO_RATIO:
                cell += f" ×{v / base:.2f}"
            cells.append(cell)
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if not extras:
        return "\n".join(lines), notes
    if any("tcp1" in pairs[p] for p in names):
        lines.append("")
        lines.append("\\* cores busy outside the two daemons and the two iperf3 processes while TCP 1 stream ran "
                     "(kernel softirq work not charged to a process, plus unrelated work on the machine).")
    threads = []
    for p in names:
        t = [x for x in pairs[p].get("threads", []) if x]
        if t:
            threads.append(f"{pair_label(p)} {t[0][0]}/{t[0][1]}")
    if threads:
        lines.append("")
        lines.append("Daemon threads (A/B) once up: " + ", ".join(threads) + ".")
    for p in names:
        for why in pairs[p].get("died_after", []):
            notes.append(f"{pair_label(p)}: a daemon died after the measurements: {why}")
        if "error" in pairs[p]:
            notes.append(f"{pair_label(p)}: {pairs[p]['error']}")
    return "\n".join(lines), notes


def _kib(v: float) -> str:
    return f"{v / 1024:.2f} KiB"


def other_table(res: dict[str, Any]) -> tuple[str, list[str]]:
    notes: list[str] = []
    lines = ["| metric | wgpy | wggo | wgpy/wggo |", "|---|---:|---:|---:|"]
    hs = res.get("handshakes")
    if hs is not None:
        if "error" in hs:
            lines.append("| handshake responses per CPU-second (1 core, in-process) | FAILED | n/a | |")
            notes.append(f"handshakes: {hs['error']}")
        else:
            lines.append(f"| handshake responses per CPU-second (1 core, in-process, {hs['responses']} "
                         f"initiators) | {hs['per_cpu_s']:.0f} | n/a (no in-process equivalent) | |")
    hd = res.get("handshakes_daemon")
    if hd:
        cells: list[str] = []
        vals: list[float | None] = []
        for kind in ("wgpy", "wggo"):
            r = hd.get(kind)
            if r is None or "error" in r:
                cells.append("FAILED" if r else "n/a")
                vals.append(None)
                if r:
                    notes.append(f"handshakes daemon {kind}: {r['error']}")
                continue
            cell = f"{r['per_cpu_s']:.0f}"
            if r["responses"] != r["initiations"]:
                cell += f" ({r['responses']}/{r['initiations']} answered)"
            cells.append(cell)
            vals.append(r["per_cpu_s"])
        ratio = f"×{vals[0] / vals[1]:.2f}" if vals[0] and vals[1] else ""
        lines.append(f"| handshake responses per daemon CPU-second (over UDP, {WINDOW_NOTE}) | {cells[0]} | "
                     f"{cells[1]} | {ratio} |")
        cells, vals = [], []
        for kind in ("wgpy", "wggo"):
            r = hd.get(kind)
            ok = r is not None and "error" not in r
            cells.append(f"{r['per_wall_s']:.0f}" if ok and r else "–")
            vals.append(r["per_wall_s"] if ok and r else None)
        ratio = f"×{vals[0] / vals[1]:.2f}" if vals[0] and vals[1] else ""
        lines.append(f"| handshake responses per wall second (same run) | {cells[0]} | {cells[1]} | {ratio} |")
    mem = res.get("memory", {})
    for n in sorted({int(k) for side in mem.values() for k in side}):
        for where, title, mine in (("daemon", "daemon, UAPI set", "wgpy"),
                                   ("daemon", "daemon with WGPY_NATIVE=0, UAPI set", "wgpy-pure"),
                                   ("inproc", "in-process Device", "wgpy")):
            if where not in mem:
                continue
            row = mem[where].get(str(n))
            if row is None or mine not in row:
                continue
            cells = []
            vals = []
            for kind in (mine, "wggo"):
                r = row.get(kind)
                if r is None:
                    cells.append("n/a")
                    vals.append(None)
                elif "error" in r:
                    cells.append("FAILED")
                    notes.append(f"memory {where} {kind} {n}: {r['error']}")
                    vals.append(None)
                else:
                    cells.append(_kib(r["per_peer"]))
                    vals.append(r["per_peer"])
            ratio = f"×{vals[0] / vals[1]:.2f}" if vals[0] and vals[1] else ""
            lines.append(f"| RSS per idle peer at {n:,} peers ({title}) | {cells[0]} | {cells[1]} | {ratio} |")
    if len(lines) == 2:
        return "", notes
    return "\n".join(lines), notes


def targets(res: dict[str, Any]) -> list[str]:
    """The issue's targets, checked against this run (reported, not asserted)."""
    out = []
    pairs = res.get("pairs", {})

    def get(pair: str, test: str, field: str) -> float | None:
        r = pairs.get(pair, {}).get(test)
        return _num(r.get(field)) if isinstance(r, dict) and "error" not in r else None

    def ratio_line(title: str, pair: str, test: str, field: str, goal: float, higher: bool,
                   base_pair: str = BASE, base_test: str | None = None) -> None:
        if pair not in pairs or base_pair not in pairs:
            return  # a pairing this run left out (--pairs)
        v, b = get(pair, test, field), get(base_pair, base_test or test, field)
        if v is None or b is None or b == 0:
            out.append(f"- {title}: not measured")
            return
        r = v / b
        ok = r >= goal if higher else r <= goal
        out.append(f"- {title}: ×{r:.2f} (target {'≥' if higher else '≤'} ×{goal:g}) — "
                   f"{'met' if ok else 'MISSED'}")

    ratio_line("TCP 1 stream wgpy→wgpy / wggo→wggo", "wgpy:wgpy", "tcp1", "bps", 3, True)
    ratio_line("TCP 1 stream wgpy→wggo / wggo→wggo", "wgpy:wggo", "tcp1", "bps", 1, True)
    ratio_line("TCP 1 stream wggo→wgpy / wggo→wggo", "wggo:wgpy", "tcp1", "bps", 1, True)
    ratio_line("CPU s/GB (TCP 1 stream) wgpy→wgpy / wggo→wggo", "wgpy:wgpy", "tcp1", "cpu_per_gb", 1, False)
    ratio_line("ping avg wgpy→wgpy / wggo→wggo", "wgpy:wgpy", "ping", "avg", 1, False)
    mod = "wggo[modern]→wggo[modern]"
    ratio_line(f"issue 13: TCP 1 stream wgpy→wgpy / {mod}", "wgpy:wgpy", "tcp1", "bps", 2.5, True, MODERN)
    ratio_line("issue 13: TCP 1 stream wgpy→wgpy / bare veth", "wgpy:wgpy", "tcp1", "bps", 0.4, True, RAW)
    floor = _num((res.get("aead") or {}).get("floor_s_per_gb"))
    cpu = get("wgpy:wgpy", "tcp1", "cpu_per_gb")
    if floor and cpu is not None:
        out.append(f"- issue 13: CPU s/GB (TCP 1 stream, both ends) wgpy→wgpy / AEAD floor: {cpu:.2f} / "
                   f"{floor:.2f} = ×{cpu / floor:.2f} (target ≤ ×2) — {'met' if cpu / floor <= 2 else 'MISSED'}")
    elif "wgpy:wgpy" in pairs:
        out.append("- issue 13: CPU s/GB wgpy→wgpy / AEAD floor: not measured")
    ratio_line("issue 13: TCP 4 streams / TCP 1 stream, wgpy→wgpy", "wgpy:wgpy", "tcp4", "bps", 1, True, "wgpy:wgpy",
               "tcp1")
    ratio_line(f"issue 13: ping avg wgpy→wgpy / {mod}", "wgpy:wgpy", "ping", "avg", 1, False, MODERN)
    ratio_line(f"issue 13: ping p99 wgpy→wgpy / {mod}", "wgpy:wgpy", "ping", "p99", 1, False, MODERN)
    hs = res.get("handshakes")
    if hs and "error" not in hs:
        v = hs["per_cpu_s"]
        out.append(f"- handshakes per core (in-process): {v:.0f}/s (target ≥ 5,000) — "
                   f"{'met' if v >= 5000 else 'MISSED'}")
    hd = res.get("handshakes_daemon", {}).get("wgpy")
    if hd and "error" not in hd and hd.get("per_cpu_s"):
        v = hd["per_cpu_s"]
        out.append(f"- handshakes per daemon CPU-second (wgpy daemon): {v:.0f}/s (target ≥ 5,000) — "
                   f"{'met' if v >= 5000 else 'MISSED'}")
    mem = res.get("memory", {})
    for where in ("daemon", "inproc"):
        r = mem.get(where, {}).get("10000", {}).get("wgpy")
        if r and "error" not in r:
            v = r["per_peer"]
            out.append(f"- RSS per idle peer at 10,000 peers ({where}): {v / 1024:.2f} KiB (target ≤ 4 KiB) — "
                       f"{'met' if v <= 4096 else 'MISSED'}")
    return out


def _evp_note(aead: dict[str, Any]) -> str:
    if "evp_pkt_floor_s_per_gb" in aead:
        return (f" The system libcrypto the native plane links, called as its seal/open call it (EVP re-init per "
                f"packet, C loop): {aead['evp_pkt_floor_s_per_gb']:.2f} s/GB at {aead['packet']} bytes, "
                f"{aead['evp_big_floor_s_per_gb']:.2f} s/GB at {aead['buffer'] // 1024} KiB (seal + open).")
    if "evp_error" in aead:
        return f" (No C loop over the system libcrypto: {aead['evp_error']}.)"
    return ""


def render(res: dict[str, Any]) -> str:
    meta = res.get("meta", {})
    parts = ["## wgpy bench " + meta.get("started", ""), ""]
    for k in ("machine", "cpu", "kernel", "versions", "native", "load", "settings"):
        if k in meta:
            parts.append(f"- {k}: {meta[k]}")
    parts.append("")
    t1, n1 = tunnel_table(res)
    if t1:
        parts += ["Tunnel (iperf3 client in namespace A → server in B; ×r = column / wggo→wggo, Debian's "
                  "wireguard-go; lower is better for CPU and ping):", "", t1, ""]
    if MODERN in res.get("pairs", {}):
        t1m, _ = tunnel_table(res, MODERN, extras=False)
        parts += ["The same figures, ×r = column / wggo[modern]→wggo[modern] (upstream wireguard-go "
                  "0.0.20250522, batching and offloads):", "", t1m, ""]
    aead = res.get("aead")
    if aead:
        if "error" in aead:
            n1.append(f"AEAD floor: {aead['error']}")
        else:
            parts += [f"AEAD floor (`bench/aead.py`, median of {aead.get('rounds', 1)} run(s), one core, "
                      f"{aead['openssl']} via cryptography's ChaCha20Poly1305, {aead['buffer'] // 1024} KiB "
                      f"buffers): seal {aead['seal_gb_per_s']:.2f} GB/s, open {aead['open_gb_per_s']:.2f} GB/s, "
                      f"so {aead['floor_s_per_gb']:.2f} CPU s/GB for both ends (seal + open); at one "
                      f"{aead['packet']}-byte packet per Python call {aead['pkt_floor_s_per_gb']:.2f} s/GB." + _evp_note(aead), ""]
    t2, n2 = other_table(res)
    if t2:
        parts += [t2, ""]
    notes = n1 + n2
    if notes:
        parts += ["Failures:", ""] + [f"- {n}" for n in notes] + [""]
    tg = targets(res)
    if tg:
        parts += ["Targets:", ""] + tg + [""]
    return "\n".join(parts)
