"""KubeSpan endpoint filters: which of its own IPs a node advertises.

Contract (kubespan.md §5 "Endpoint filters"; the semantics of
siderolabs/net ``FilterIPs`` and ``ParseSubnetOrAddress``):

- ``rules is None``: no filtering; the addresses come back unchanged, in order.
- Otherwise the rules run in list order, starting from an empty result.  A
  rule is a CIDR or a bare IP (a bare IP is a /32 or /128); a rule with a
  leading ``!`` is negative.  A positive rule appends every input address it
  contains that is not in the result yet (input order); a negative rule removes
  every address it contains from the result.  So order matters, and the output
  is grouped by rule: ``["0.0.0.0/0", "!192.168.0.0/16", "::/0"]`` gives all
  the IPv4 addresses outside 192.168/16, then all the IPv6 ones.
- An empty rule list drops everything.
- Parsing is Go ``netip`` strict: dotted-quad IPv4 without leading zeros, a
  decimal prefix length without sign or leading zero, no IPv6 zone in a
  prefix (a zone on a bare IP is dropped, as ``netip.PrefixFrom`` does).  The
  address part of a CIDR need not be masked (``10.3.4.6/8`` is ``10/8``).
- A prefix never contains an address of the other family (an IPv4-mapped
  IPv6 address is IPv6) nor an address with a zone.

Any malformed rule raises ``kubespan.errors.ConfigError`` naming the rule,
never ``ValueError``.  Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from .errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BITS_RE = re.compile(r"(?:0|[1-9][0-9]{0,2})\Z")


def parse_addr(text: str) -> IPAddress:
    """Parse one IP address like Go's ``netip.ParseAddr`` (zone dropped).

    Raises ``ValueError`` on anything else.
    """
    if not isinstance(text, str) or not text.isascii() or not text:
        raise ValueError("not an IP address")
    host, sep, zone = text.partition("%")
    if sep:
        if ":" not in host or not zone:
            raise ValueError("bad zone")
    if ":" in host:
        return ipaddress.IPv6Address(host)
    if "." in host:
        return ipaddress.IPv4Address(host)
    raise ValueError("not an IP address")


def _network(addr: IPAddress, bits: int) -> IPNetwork:
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(addr), bits), strict=False)
    return ipaddress.IPv6Network((int(addr), bits), strict=False)


def parse_prefix(text: str) -> IPNetwork:
    """Parse a CIDR like Go's ``netip.ParsePrefix`` (the result is masked).

    Raises ``ValueError`` on anything else, including a bare IP.
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    addr_text, sep, bits_text = text.rpartition("/")
    if not sep:
        raise ValueError("no '/'")
    if "%" in addr_text:
        raise ValueError("IPv6 zones cannot be present in a prefix")
    addr = parse_addr(addr_text)
    if not _BITS_RE.match(bits_text):
        raise ValueError("bad bits after slash")
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        raise ValueError("prefix length out of range")
    return _network(addr, bits)


def parse_subnet_or_address(text: str) -> IPNetwork:
    """A CIDR, or a bare IP as a /32 or /128 (``ParseSubnetOrAddress``)."""
    try:
        return parse_prefix(text)
    except ValueError as prefix_err:
        try:
            addr = parse_addr(text)
        except ValueError:
            raise prefix_err from None
        return _network(addr, addr.max_prefixlen)


def parse_rule(rule: object, path: str = "") -> tuple[bool, IPNetwork]:
    """Parse one filter rule into ``(positive, network)``.

    Raises ``ConfigError`` (with ``path``) for a non-string or malformed rule.
    """
    if not isinstance(rule, str):
        raise ConfigError(path, f"{rule!r} is not a string")
    positive = not rule.startswith("!")
    body = rule if positive else rule[1:]
    try:
        return positive, parse_subnet_or_address(body)
    except ValueError:
        raise ConfigError(path, f"{rule!r} is not a valid endpoint filter (want a CIDR or an IP, optionally prefixed with '!')") from None


def validate_rules(rules: object, path: str) -> tuple[str, ...]:
    """Check a YAML filter list; return it as a tuple of strings.

    ``path`` is the YAML path of the list; errors name ``path[index]``.
    """
    if not isinstance(rules, list):
        raise ConfigError(path, f"{rules!r} is not a list")
    for i, rule in enumerate(rules):
        parse_rule(rule, f"{path}[{i}]")
    return tuple(rules)


def _contains(network: IPNetwork, addr: IPAddress) -> bool:
    if network.version != addr.version:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        return False
    return addr in network


def filter_ips(addrs: Iterable[IPAddress], rules: Sequence[str] | None) -> list[IPAddress]:
    """Apply endpoint filter ``rules`` to ``addrs`` (see the module contract)."""
    addr_list = list(addrs)
    if rules is None:
        return addr_list
    parsed = [parse_rule(rule, f"[{i}]") for i, rule in enumerate(rules)]
    result: list[IPAddress] = []
    for positive, network in parsed:
        if positive:
            for addr in addr_list:
                if _contains(network, addr) and addr not in result:
                    result.append(addr)
        else:
            result = [addr for addr in result if not _contains(network, addr)]
    return result
