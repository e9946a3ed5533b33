"""Routing effects: link address, ip rules, table 180 and the nftables marks.

Contract (kubespan.md §1 last paragraph, §6; architecture.md point 9):
``RoutingEffects.apply(spec)`` makes the kernel match a ``RoutingSpec`` and
returns what it changed (an empty list when nothing did: apply is idempotent
and touches the kernel only on a difference); ``cleanup()`` removes
everything it owns, also state left behind by a crashed earlier run.

``KernelRouting`` is the real implementation (rtnetlink through ``kubespan.rtnl`` + the ``nft`` tool):

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
named network namespace.  Not thread-safe.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from . import rtnl
from .controller import FWMARK_FORCE, FWMARK_MASK, FWMARK_WIREGUARD, RoutingSpec
from .filters import IPNetwork

log = logging.getLogger("kubespan.routing")

__all__ = ["KernelRouting", "NFT_TABLE", "RoutingEffects", "nft_available", "render_nft"]

NFT_TABLE = "kubespan"
FIB_RULE_INVERT = 0x2
RTPROT_STATIC = 4
MSS_OVERHEAD_V4 = 52
MSS_OVERHEAD_V6 = 72
NFT_TIMEOUT = 10.0


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
                 nft_table: str = NFT_TABLE) -> None:
        self.netns = netns
        self.nft_table = nft_table
        self.use_nftables = nft_available(netns) if use_nftables is None else use_nftables
        self._applied_nft: str | None = None
        self._spec: RoutingSpec | None = None

    # --- netlink ------------------------------------------------------------------------

    def _rtnl(self) -> rtnl.Rtnl:
        return rtnl.Rtnl(self.netns)

    def apply(self, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        with self._rtnl() as nl:
            index = self._link_index(nl, spec.link)
            if index is None:
                raise OSError(f"link {spec.link} does not exist")
            changes += self._ensure_link(nl, index, spec)
            changes += self._ensure_rules(nl, spec)
            changes += self._ensure_routes(nl, index, spec)
        if self.use_nftables:
            changes += self._ensure_nft(spec)
        self._spec = spec
        return changes

    @staticmethod
    def _link_index(nl: rtnl.Rtnl, name: str) -> int | None:
        for link in nl.dump(rtnl.LINK):
            if link.text(rtnl.IFLA_IFNAME) == name:
                return int(link.header[2])
        return None

    def _ensure_link(self, nl: rtnl.Rtnl, index: int, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        link = next((m for m in nl.dump(rtnl.LINK) if m.header[2] == index), None)
        if link is None:
            raise OSError(f"link {spec.link} does not exist")
        if not link.header[3] & rtnl.IFF_UP:
            nl.request(rtnl.RTM_NEWLINK, rtnl.IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, rtnl.IFF_UP, rtnl.IFF_UP))
            changes.append(f"link {spec.link} set up")
        want = (spec.address.ip, spec.address.network.prefixlen)
        have = {(ipaddress.ip_address(m.attrs[rtnl.IFA_ADDRESS]), m.header[1])
                for m in nl.dump(rtnl.ADDR, socket.AF_INET6) if m.header[4] == index and rtnl.IFA_ADDRESS in m.attrs}
        if want not in have:
            ip = str(spec.address.ip)
            nl.request(rtnl.RTM_NEWADDR, rtnl.IFADDRMSG.pack(socket.AF_INET6, want[1], 0, 0, index),
                       [rtnl.ip_attr(rtnl.IFA_LOCAL, ip), rtnl.ip_attr(rtnl.IFA_ADDRESS, ip)],
                       rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
            changes.append(f"address {spec.address} added to {spec.link}")
        return changes

    def _rule_kwargs(self, spec: RoutingSpec, family: int) -> dict[str, Any]:
        if self.use_nftables:
            return dict(family=family, priority=spec.priority, table=spec.table, fwmark=FWMARK_FORCE,
                        fwmask=FWMARK_MASK)
        return dict(family=family, priority=spec.priority, table=spec.table, fwmark=FWMARK_WIREGUARD,
                    fwmask=FWMARK_MASK, flags=FIB_RULE_INVERT)

    def _ensure_rules(self, nl: rtnl.Rtnl, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            want = self._rule_kwargs(spec, family)
            found = False
            for rule in self._our_rules(nl, family, spec.priority, spec.table):
                same = (rule.u32(rtnl.FRA_FWMARK) == want["fwmark"] and rule.u32(rtnl.FRA_FWMASK) == want["fwmask"]
                        and rule.header[8] & FIB_RULE_INVERT == want.get("flags", 0))
                if same and not found:
                    found = True
                    continue
                self._del_rule(nl, rule)
                changes.append(f"removed stale rule priority {spec.priority} (family {family})")
            if not found:
                table = want["table"]
                nl.request(rtnl.RTM_NEWRULE,
                           rtnl.FIB_RULE_HDR.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0,
                                                  rtnl.FR_ACT_TO_TBL, want.get("flags", 0)),
                           [rtnl.u32(rtnl.FRA_PRIORITY, want["priority"]), rtnl.u32(rtnl.FRA_TABLE, table),
                            rtnl.u32(rtnl.FRA_FWMARK, want["fwmark"]), rtnl.u32(rtnl.FRA_FWMASK, want["fwmask"])],
                           rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
                changes.append(f"rule {self._rule_text(want)} added")
        return changes

    @staticmethod
    def _rule_text(kw: dict[str, Any]) -> str:
        neg = "not " if kw.get("flags", 0) & FIB_RULE_INVERT else ""
        fam = "ipv6" if kw["family"] == socket.AF_INET6 else "ipv4"
        return f"{fam} {neg}fwmark 0x{kw['fwmark']:x}/0x{kw['fwmask']:x} lookup {kw['table']} prio {kw['priority']}"

    @staticmethod
    def _our_rules(nl: rtnl.Rtnl, family: int, priority: int, table: int) -> list[rtnl.Msg]:
        out = []
        for rule in nl.dump(rtnl.RULE, family):
            rule_table = rule.u32(rtnl.FRA_TABLE) or rule.header[4]
            if rule.u32(rtnl.FRA_PRIORITY) == priority and rule_table == table:
                out.append(rule)
        return out

    @staticmethod
    def _del_rule(nl: rtnl.Rtnl, rule: rtnl.Msg) -> None:
        """Delete exactly this rule (its header and the attributes that select it)."""
        keep = (rtnl.FRA_PRIORITY, rtnl.FRA_TABLE, rtnl.FRA_FWMARK, rtnl.FRA_FWMASK)
        nl.request(rtnl.RTM_DELRULE, rtnl.FIB_RULE_HDR.pack(*rule.header),
                   [rtnl.attr(k, rule.attrs[k]) for k in keep if k in rule.attrs])

    def _desired_routes(self, spec: RoutingSpec) -> set[IPNetwork]:
        if self.use_nftables:
            return {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
        return set(spec.routed)

    def _ensure_routes(self, nl: rtnl.Rtnl, index: int, spec: RoutingSpec) -> list[str]:
        changes: list[str] = []
        want = self._desired_routes(spec)
        have: set[IPNetwork] = set()
        for route, net in self._table_routes(nl, spec.table):
            ok = net in want and route.u32(rtnl.RTA_OIF) == index and self._route_mtu(route) == spec.mtu
            if ok and net not in have:
                have.add(net)
                continue
            self._del_route(nl, route)
            if net not in want:
                changes.append(f"route {net} removed from table {spec.table}")
        for net in sorted(want - have, key=lambda n: (n.version, n.network_address.packed, n.prefixlen)):
            family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
            table = spec.table
            attributes = [rtnl.u32(rtnl.RTA_TABLE, table), rtnl.u32(rtnl.RTA_OIF, index),
                          rtnl.attr(rtnl.RTA_METRICS, rtnl.u32(rtnl.RTAX_MTU, spec.mtu))]
            if net.prefixlen:
                attributes.append(rtnl.attr(rtnl.RTA_DST, net.network_address.packed))
            if self.use_nftables:
                attributes.append(rtnl.u32(rtnl.RTA_PRIORITY, 1))
            nl.request(rtnl.RTM_NEWROUTE,
                       rtnl.RTMSG.pack(family, net.prefixlen, 0, 0, table if table < 256 else 0, RTPROT_STATIC,
                                       0, rtnl.RTN_UNICAST, 0),
                       attributes, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
            changes.append(f"route {net} dev {spec.link} mtu {spec.mtu} added to table {spec.table}")
        return changes

    @staticmethod
    def _del_route(nl: rtnl.Rtnl, route: rtnl.Msg) -> None:
        """Delete exactly this route (proto, oif and metric must match what the kernel has)."""
        keep = (rtnl.RTA_TABLE, rtnl.RTA_DST, rtnl.RTA_OIF, rtnl.RTA_PRIORITY)
        nl.request(rtnl.RTM_DELROUTE, rtnl.RTMSG.pack(*route.header),
                   [rtnl.attr(k, route.attrs[k]) for k in keep if k in route.attrs])

    @staticmethod
    def _route_mtu(route: rtnl.Msg) -> int | None:
        metrics = route.attrs.get(rtnl.RTA_METRICS)
        if metrics is None:
            return None
        raw = rtnl.attrs(metrics).get(rtnl.RTAX_MTU)
        return int.from_bytes(raw[:4], sys.byteorder) if raw is not None and len(raw) >= 4 else None

    @staticmethod
    def _table_routes(nl: rtnl.Rtnl, table: int) -> list[tuple[rtnl.Msg, IPNetwork]]:
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in nl.dump(rtnl.ROUTE, family):
                if (route.u32(rtnl.RTA_TABLE) or route.header[4]) != table:
                    continue
                dst = route.attrs.get(rtnl.RTA_DST)
                addr = ipaddress.ip_address(dst) if dst else ipaddress.ip_address("0.0.0.0" if family == socket.AF_INET
                                                                                  else "::")
                out.append((route, ipaddress.ip_network(f"{addr}/{route.header[1]}")))
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

    def _ensure_nft(self, spec: RoutingSpec) -> list[str]:
        text = render_nft(spec, self.nft_table)
        if text == self._applied_nft and self._nft_table_exists():
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
        except Exception as exc:  # a kernel refusal (OSError) or anything unexpected: cleanup never raises
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
        return changes

    def _cleanup_netlink(self, link: str, table: int, priority: int) -> list[str]:
        changes: list[str] = []
        with self._rtnl() as nl:
            for family in (socket.AF_INET, socket.AF_INET6):
                for rule in self._our_rules(nl, family, priority, table):
                    self._del_rule(nl, rule)
                    changes.append(f"rule priority {priority} lookup {table} removed")
            for route, net in self._table_routes(nl, table):
                self._del_route(nl, route)
                changes.append(f"route {net} removed from table {table}")
            index = self._link_index(nl, link)
            if index is not None and self._spec is not None:
                address = self._spec.address
                try:
                    ip = str(address.ip)
                    nl.request(rtnl.RTM_DELADDR,
                               rtnl.IFADDRMSG.pack(socket.AF_INET6, address.network.prefixlen, 0, 0, index),
                               [rtnl.ip_attr(rtnl.IFA_LOCAL, ip), rtnl.ip_attr(rtnl.IFA_ADDRESS, ip)])
                    changes.append(f"address {address} removed from {link}")
                except OSError:
                    pass  # already gone
        return changes
