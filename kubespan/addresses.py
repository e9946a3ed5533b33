"""This host's addresses as the local affiliate needs them: one netlink dump of links and addresses.

Contract: ``read_addresses()`` returns every address on this network namespace's links as
``affiliates.NodeAddress`` (IP, prefix length, link name, scope, whether the link is up by
``affiliates.link_is_up``, as Talos's network/node_address.go decides); the filtering
(which of them a node announces) is ``kubespan.affiliates``'s.  Reads netlink through ``kubespan.rtnl``;
nothing else, no state.
"""

from __future__ import annotations

import ipaddress

from . import rtnl
from .affiliates import NodeAddress, link_is_up
from .identity import ARPHRD_ETHER

_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}


def _link_up(link: rtnl.Msg) -> bool:
    """``affiliates.link_is_up`` for one rtnetlink link message."""
    info = link.attrs.get(rtnl.IFLA_LINKINFO)
    kind = rtnl.attrs(info).get(rtnl.IFLA_INFO_KIND) if info is not None else None
    physical = link.header[1] == ARPHRD_ETHER and not kind
    state = link.attrs.get(rtnl.IFLA_OPERSTATE, b"\0")[:1]
    operstate = rtnl.OPERSTATES[state[0]] if state and state[0] < len(rtnl.OPERSTATES) else "UNKNOWN"
    return link_is_up(operstate, bool(link.attrs.get(rtnl.IFLA_CARRIER, b"\0")[:1] != b"\0"), physical)


def read_addresses() -> list[NodeAddress]:
    """Every address on this host's links (netlink dump), with its link's up/down state."""
    with rtnl.Rtnl() as nl:
        links = nl.dump(rtnl.LINK)
        addrs = nl.dump(rtnl.ADDR)
    names = {link.header[2]: link.text(rtnl.IFLA_IFNAME) or "" for link in links}
    up = {link.header[2]: _link_up(link) for link in links}
    out: list[NodeAddress] = []
    for msg in addrs:
        _family, prefixlen, _flags, scope, index = msg.header
        raw = msg.attrs.get(rtnl.IFA_LOCAL) or msg.attrs.get(rtnl.IFA_ADDRESS)
        if raw is None or len(raw) not in (4, 16):
            continue
        ip = ipaddress.ip_address(raw)
        out.append(NodeAddress(ip=ip, prefixlen=prefixlen, link=names.get(index, ""),
                               scope=_SCOPES.get(scope, "global"), link_up=up.get(index, False)))
    return out
