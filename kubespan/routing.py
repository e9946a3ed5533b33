"""Routing effects: link address, ip rules, table 180 and the nftables marks.

Contract (kubespan.md §1 last paragraph, §6; architecture.md point 9):
``RoutingEffects.apply(spec)`` makes the kernel match a ``RoutingSpec`` and
returns what it changed (an empty list when nothing did: apply is idempotent
and touches the kernel only on a difference); ``cleanup()`` removes
everything it owns, also state left behind by a crashed earlier run.

``KernelRouting`` is the real implementation (pyroute2 + the ``nft`` tool):

- the KubeSpan address on the ``kubespan`` link **with /64**, link up;
- with nftables: inet table ``kubespan`` (sets ``kubespan_targets_ipv4/6``
  = the routed set; chains ``kubespan_prerouting`` (filter) and
  ``kubespan_outgoing`` (route, output): mark 0x20/0x60 accept, ``lo`` accept,
  TCP SYN MSS clamp to MTU-52 (v4) / MTU-72 (v6), then mark 0x40/0x60), rule
  ``fwmark 0x40/0x60 lookup 180`` priority 32500 (v4 and v6), and table 180
  holding one default route per family via ``kubespan`` (metric 1, route MTU);
- without nftables: rule ``not fwmark 0x20/0x60 lookup 180`` priority 32500
  and table 180 holding a route via ``kubespan`` for each routed prefix only.

Either way our own encrypted UDP carries fwmark 0x20 (set on wgpy's sockets
by the agent) and never re-enters the tunnel.  Ownership: rules at priority
32500 that look up table 180, every route in table 180, the nft table
``kubespan``, the address on the link.  ``netns`` (tests) runs everything in a
named network namespace.  One pyroute2 ``IPRoute`` is opened on first use and
kept until ``cleanup()`` / ``close()`` (pyroute2's import and each new socket cost
more than the dumps).  ``apply`` reads the kernel back only when the part of the
spec it compares changed or ``VERIFY_INTERVAL`` passed since it last did (in
nftables mode a change of the routed set then only rewrites the nft table):
state removed behind its back is restored by the next apply after that
(the agent's 30 s reconcile).  Not thread-safe: one thread at a time, always the
same one (the agent's netlink worker).
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .controller import FWMARK_FORCE, FWMARK_MASK, FWMARK_WIREGUARD, RoutingSpec
from .filters import IPNetwork
from .netlink import iproute_class

log = logging.getLogger("kubespan.routing")

__all__ = ["KernelRouting", "NFT_TABLE", "RoutingEffects", "nft_available", "render_nft"]

NFT_TABLE = "kubespan"
FIB_RULE_INVERT = 0x2
RTPROT_STATIC = 4
MSS_OVERHEAD_V4 = 52
MSS_OVERHEAD_V6 = 72
NFT_TIMEOUT = 10.0
VERIFY_INTERVAL = 25.0
"""Seconds ``KernelRouting.apply`` trusts the kernel state it applied before it reads it back again."""


class RoutingEffects(Protocol):
    """The effect object the agent drives."""

    def apply(self, spec: RoutingSpec) -> list[str]: ...

    def cleanup(self) -> list[str]: ...


def nft_available(netns: str | None = None) -> bool:
    """Whether ``nft`` exists and can list the ruleset here."""
    if shutil.which("nft") is None:
        return False
    try:
        res = subprocess.run(_ns(netns, ["nft", "list", "tables"]), capture_output=True, timeout=NFT_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def _ns(netns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


def _elements(nets: Sequence[IPNetwork]) -> str:
    return ", ".join(str(n) for n in nets)


def render_nft(spec: RoutingSpec, table: str = NFT_TABLE) -> str:
    """The nft table for ``spec`` (without the delete prologue)."""
    v4 = [n for n in spec.routed if n.version == 4]
    v6 = [n for n in spec.routed if n.version == 6]
    mark = f"meta mark set meta mark & 0x{0xFFFFFFFF ^ FWMARK_MASK:08x} | 0x{FWMARK_FORCE:08x} accept"
    ours = f"meta mark & 0x{FWMARK_MASK:08x} == 0x{FWMARK_WIREGUARD:08x} accept"
    syn = "tcp flags & (syn | rst) == syn"
    mss4, mss6 = spec.mtu - MSS_OVERHEAD_V4, spec.mtu - MSS_OVERHEAD_V6
    lines = [f"table inet {table} {{"]
    for name, kind, nets in (("ipv4", "ipv4_addr", v4), ("ipv6", "ipv6_addr", v6)):
        elements = f" elements = {{ {_elements(nets)} }}" if nets else ""
        lines.append(f"  set kubespan_targets_{name} {{ type {kind}; flags interval; auto-merge;{elements} }}")
    lines += [
        "  chain kubespan_prerouting {",
        "    type filter hook prerouting priority 0; policy accept;",
        f"    {ours}",
        f"    ip daddr @kubespan_targets_ipv4 {mark}",
        f"    ip6 daddr @kubespan_targets_ipv6 {mark}",
        "  }",
        "  chain kubespan_outgoing {",
        "    type route hook output priority 0; policy accept;",
        f"    {ours}",
        '    oifname "lo" accept',
        f"    ip daddr @kubespan_targets_ipv4 {syn} tcp option maxseg size > {mss4} tcp option maxseg size set {mss4}",
        f"    ip6 daddr @kubespan_targets_ipv6 {syn} tcp option maxseg size > {mss6} tcp option maxseg size set {mss6}",
        f"    ip daddr @kubespan_targets_ipv4 {mark}",
        f"    ip6 daddr @kubespan_targets_ipv6 {mark}",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


class KernelRouting:
    """``RoutingEffects`` on the real kernel (root / CAP_NET_ADMIN)."""

    def __init__(self, *, use_nftables: bool | None = None, netns: str | None = None,
                 nft_table: str = NFT_TABLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.netns = netns
        self.nft_table = nft_table
        self.use_nftables = nft_available(netns) if use_nftables is None else use_nftables
        self._applied_nft: str | None = None
        self._spec: RoutingSpec | None = None
        self._clock = clock
        self._handle: Any = None
        self._verified: tuple[tuple[Any, ...], float] | None = None
        """What the last read-back compared (the spec's netlink part) and when."""

    # --- netlink -------------------------------------------------------------------------

    def _ipr(self) -> Any:
        if self._handle is None:
            iproute = iproute_class()
            self._handle = iproute(netns=self.netns) if self.netns else iproute()
        return self._handle

    def close(self) -> None:
        """Close the netlink socket (the next call opens another)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def _netlink_key(self, spec: RoutingSpec) -> tuple[Any, ...]:
        routed = () if self.use_nftables else spec.routed
        return (spec.link, spec.address, spec.mtu, spec.table, spec.priority, routed)

    def apply(self, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        now = self._clock()
        key = self._netlink_key(spec)
        fresh = self._verified is not None and self._verified[0] == key and now - self._verified[1] < VERIFY_INTERVAL
        if not fresh:
            self._verified = None
            try:
                ipr = self._ipr()
                index = self._link_index(ipr, spec.link)
                if index is None:
                    raise OSError(f"link {spec.link} does not exist")
                changes += self._ensure_link(ipr, index, spec)
                changes += self._ensure_rules(ipr, spec)
                changes += self._ensure_routes(ipr, index, spec)
            except BaseException:
                self.close()  # a fresh socket next time
                raise
            self._verified = (key, now)
        if self.use_nftables:
            changes += self._ensure_nft(spec, verify=not fresh)
        self._spec = spec
        return changes

    @staticmethod
    def _link_index(ipr: Any, name: str) -> int | None:
        found = ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def _ensure_link(self, ipr: Any, index: int, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        link = ipr.get_links(index)[0]
        if not link["flags"] & 1:
            ipr.link("set", index=index, state="up")
            changes.append(f"link {spec.link} set up")
        want = (spec.address.ip, spec.address.network.prefixlen)
        have = {(ipaddress.ip_address(a.get("address")), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=socket.AF_INET6)}
        if want not in have:
            ipr.addr("add", index=index, address=str(spec.address.ip), prefixlen=spec.address.network.prefixlen)
            changes.append(f"address {spec.address} added to {spec.link}")
        return changes

    def _rule_kwargs(self, spec: RoutingSpec, family: int) -> dict[str, Any]:
        if self.use_nftables:
            return dict(family=family, priority=spec.priority, table=spec.table, fwmark=FWMARK_FORCE,
                        fwmask=FWMARK_MASK)
        return dict(family=family, priority=spec.priority, table=spec.table, fwmark=FWMARK_WIREGUARD,
                    fwmask=FWMARK_MASK, flags=FIB_RULE_INVERT)

    def _ensure_rules(self, ipr: Any, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            want = self._rule_kwargs(spec, family)
            found = False
            for rule in self._our_rules(ipr, family, spec.priority, spec.table):
                same = (rule.get("fwmark") == want["fwmark"] and rule.get("fwmask") == want["fwmask"]
                        and rule["flags"] & FIB_RULE_INVERT == want.get("flags", 0))
                if same and not found:
                    found = True
                    continue
                self._del_rule(ipr, rule, family)
                changes.append(f"removed stale rule priority {spec.priority} (family {family})")
            if not found:
                ipr.rule("add", **want)
                changes.append(f"rule {self._rule_text(want)} added")
        return changes

    @staticmethod
    def _rule_text(kw: dict[str, Any]) -> str:
        neg = "not " if kw.get("flags", 0) & FIB_RULE_INVERT else ""
        fam = "ipv6" if kw["family"] == socket.AF_INET6 else "ipv4"
        return f"{fam} {neg}fwmark 0x{kw['fwmark']:x}/0x{kw['fwmask']:x} lookup {kw['table']} prio {kw['priority']}"

    @staticmethod
    def _our_rules(ipr: Any, family: int, priority: int, table: int) -> list[Any]:
        out = []
        for rule in ipr.get_rules(family=family):
            rule_table = rule.get("table") or rule["table"]
            if rule.get("priority") == priority and rule_table == table:
                out.append(rule)
        return out

    @staticmethod
    def _del_rule(ipr: Any, rule: Any, family: int) -> None:
        kw: dict[str, Any] = dict(family=family, priority=rule.get("priority"), table=rule.get("table"))
        if rule.get("fwmark") is not None:
            kw.update(fwmark=rule.get("fwmark"), fwmask=rule.get("fwmask"))
        kw["flags"] = rule["flags"]
        ipr.rule("del", **kw)

    def _desired_routes(self, spec: RoutingSpec) -> set[IPNetwork]:
        if self.use_nftables:
            return {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
        return set(spec.routed)

    def _ensure_routes(self, ipr: Any, index: int, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        want = self._desired_routes(spec)
        have: set[IPNetwork] = set()
        for route, net in self._table_routes(ipr, spec.table):
            ok = net in want and route.get("oif") == index and self._route_mtu(route) == spec.mtu
            if ok and net not in have:
                have.add(net)
                continue
            self._del_route(ipr, route, net, spec.table)
            if net not in want:
                changes.append(f"route {net} removed from table {spec.table}")
        for net in sorted(want - have, key=lambda n: (n.version, n.network_address.packed, n.prefixlen)):
            kw: dict[str, Any] = dict(dst=str(net), oif=index, table=spec.table, proto=RTPROT_STATIC,
                                      metrics={"mtu": spec.mtu})
            if self.use_nftables:
                kw["priority"] = 1
            ipr.route("add", **kw)
            changes.append(f"route {net} dev {spec.link} mtu {spec.mtu} added to table {spec.table}")
        return changes

    @staticmethod
    def _del_route(ipr: Any, route: Any, net: IPNetwork, table: int) -> None:
        """Delete exactly this route (proto, oif and metric must match what the kernel has)."""
        kw: dict[str, Any] = dict(table=table, dst=str(net), family=route["family"], proto=route["proto"],
                                  scope=route["scope"], type=route["type"])
        for key in ("oif", "priority"):
            if route.get(key) is not None:
                kw[key] = route.get(key)
        ipr.route("del", **kw)

    @staticmethod
    def _route_mtu(route: Any) -> int | None:
        metrics = route.get("metrics")
        if metrics is None:
            return None
        mtu = metrics.get("mtu") if hasattr(metrics, "get") else None
        return int(mtu) if mtu is not None else None

    @staticmethod
    def _table_routes(ipr: Any, table: int) -> list[tuple[Any, IPNetwork]]:
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ipr.get_routes(family=family, table=table):
                if (route.get("table") or route["table"]) != table:
                    continue
                dst = route.get("dst") or ("0.0.0.0" if family == socket.AF_INET else "::")
                out.append((route, ipaddress.ip_network(f"{dst}/{route['dst_len']}")))
        return out

    # --- nftables ------------------------------------------------------------------------

    def _nft(self, script: str) -> None:
        res = subprocess.run(_ns(self.netns, ["nft", "-f", "-"]), input=script, capture_output=True, text=True,
                             timeout=NFT_TIMEOUT)
        if res.returncode != 0:
            raise OSError(f"nft failed: {res.stderr.strip()}")

    def _nft_table_exists(self) -> bool:
        res = subprocess.run(_ns(self.netns, ["nft", "list", "table", "inet", self.nft_table]),
                             capture_output=True, timeout=NFT_TIMEOUT)
        return res.returncode == 0

    def _ensure_nft(self, spec: RoutingSpec, verify: bool = True) -> list[str]:
        text = render_nft(spec, self.nft_table)
        if text == self._applied_nft and (not verify or self._nft_table_exists()):
            return []
        prologue = f"table inet {self.nft_table}\ndelete table inet {self.nft_table}\n"
        self._nft(prologue + text)
        self._applied_nft = text
        return [f"nft table inet {self.nft_table} written ({len(spec.routed)} routed prefixes)"]

    # --- cleanup -------------------------------------------------------------------------

    def cleanup(self, link: str = "kubespan", table: int = 180, priority: int = 32500) -> list[str]:
        """Remove our rules, table 180, the nft table and the link address; never raises OSError."""
        if self._spec is not None:
            link, table, priority = self._spec.link, self._spec.table, self._spec.priority
        changes: list[str] = []
        try:
            changes += self._cleanup_netlink(link, table, priority)
        except Exception as exc:  # pyroute2 raises its own NetlinkError (an OSError) or others
            log.warning("routing cleanup: %s", exc)
        if shutil.which("nft") is not None:
            try:
                if self._nft_table_exists():
                    self._nft(f"delete table inet {self.nft_table}\n")
                    changes.append(f"nft table inet {self.nft_table} deleted")
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("nft cleanup: %s", exc)
        self._applied_nft = None
        self._spec = None
        self._verified = None
        self.close()
        return changes

    def _cleanup_netlink(self, link: str, table: int, priority: int) -> list[str]:
        changes: list[str] = []
        ipr = self._ipr()
        try:
            for family in (socket.AF_INET, socket.AF_INET6):
                for rule in self._our_rules(ipr, family, priority, table):
                    self._del_rule(ipr, rule, family)
                    changes.append(f"rule priority {priority} lookup {table} removed")
            for route, net in self._table_routes(ipr, table):
                self._del_route(ipr, route, net, table)
                changes.append(f"route {net} removed from table {table}")
            index = self._link_index(ipr, link)
            if index is not None and self._spec is not None:
                address = self._spec.address
                try:
                    ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
                    changes.append(f"address {address} removed from {link}")
                except OSError:
                    pass  # already gone
        finally:
            self.close()
        return changes
