"""This host's addresses as the local affiliate needs them: one netlink dump of links and addresses.

Contract: ``read_addresses()`` returns every address on this network namespace's links as
``affiliates.NodeAddress`` (IP, prefix length, link name, scope, whether the link is up by
``affiliates.link_is_up``, as Talos's network/node_address.go decides); the filtering
(which of them a node announces) is ``kubespan.affiliates``'s.  Reads netlink through pyroute2
(``kubespan.netlink``);
nothing else, no state.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .affiliates import NodeAddress, link_is_up
from .identity import ARPHRD_ETHER
from .netlink import iproute_class

_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}


def _link_up(link: Any) -> bool:
    """``affiliates.link_is_up`` for one rtnetlink link message."""
    info = link.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    physical = link["ifi_type"] == ARPHRD_ETHER and not kind
    return link_is_up(link.get("IFLA_OPERSTATE") or "", bool(link.get("IFLA_CARRIER")), physical)


def read_addresses(ipr: Any = None) -> list[NodeAddress]:
    """Every address on this host's links (netlink dump), with its link's up/down state; through
    ``ipr`` (an open pyroute2 ``IPRoute``, left open) or a socket of its own."""
    if ipr is None:
        with iproute_class()() as own:
            return read_addresses(own)
    links = ipr.get_links()
    names = {link["index"]: link.get("ifname") or "" for link in links}
    up = {link["index"]: _link_up(link) for link in links}
    out: list[NodeAddress] = []
    for msg in ipr.get_addr():
        text = msg.get("local") or msg.get("address")
        if not text:
            continue
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        out.append(NodeAddress(ip=ip, prefixlen=int(msg["prefixlen"]), link=names.get(msg["index"], ""),
                               scope=_SCOPES.get(int(msg["scope"]), "global"),
                               link_up=up.get(msg["index"], False)))
    return out


class AddressReader:
    """``read_addresses`` through one ``IPRoute`` kept open between reads (``close()`` ends it); on a
    netlink error the socket is dropped and the next read opens another.  One thread at a time."""

    def __init__(self) -> None:
        self._ipr: Any = None

    def read(self) -> list[NodeAddress]:
        if self._ipr is None:
            self._ipr = iproute_class()()
        try:
            return read_addresses(self._ipr)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._ipr is not None:
            ipr, self._ipr = self._ipr, None
            ipr.close()
