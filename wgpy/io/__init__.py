"""The runtime shell: everything in wgpy that touches a file descriptor.

Contract: ``tun_linux`` (the TUN device and rtnetlink link events), ``udp``
(the v4/v6 socket pair), ``uapi_server`` (the UAPI unix socket) and ``runner``
(the asyncio glue that feeds ``wgpy.device.Device`` and performs its
actions).  Protocol logic stays in the sans-IO core; these modules only move
bytes and apply configuration atomically.
"""
