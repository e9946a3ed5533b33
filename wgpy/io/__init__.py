"""The runtime shell: everything in wgpy that touches a file descriptor.

Contract: ``tun_linux`` (the TUN device, created with python-pytun, and
rtnetlink link events), ``udp`` (the v4/v6 socket pair), ``unixsock``
(owner-only unix sockets), ``uapi_server`` (the UAPI unix socket),
``fastpath`` (the native mode's TX/RX threads and mailbox) and ``runner``
(the asyncio glue that feeds ``wgpy.device.Device`` and performs its
actions).  Protocol logic stays in the sans-IO core (the ICMP unreachable
builder included: ``wgpy.icmp``); these modules only move bytes and apply
configuration atomically.  ``wgpy.interface`` wires them together.
"""
