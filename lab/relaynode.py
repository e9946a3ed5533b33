"""One wgpy node of the relay lab (``lab.relay``): ``python -m lab.relaynode IFNAME PRIVATE_KEY_B64 PORT``.

Runs inside a namespace: creates the ``wgpy.Interface`` IFNAME (TUN, UDP port PORT, the UAPI socket so ``wg``
sees it), prints ``{"ready": ...}`` and then answers one JSON command per stdin line with one JSON line on
stdout, until stdin closes, SIGTERM or ``{"op": "quit"}`` (then it closes the interface and its socket):

    {"op": "relay", "key": HEX|null, "serve": bool, "rate": int, "burst": int}   -> Interface.set_relay
    {"op": "peer", "pub": B64, "endpoint": [host, port]|null, "relayed": bool, "probe": [host, port]|null,
     "allowed": [cidr...], "keepalive": int|null}                                -> Interface.set_peer
    {"op": "stats"}  -> {"peers": {B64: {...PeerStats...}}, "relay": {...RelayStats...}, "drops": {...}}

A bad command answers ``{"error": "..."}`` and the node keeps running.  Not installed; lab use only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from typing import Any

from wgpy.interface import Interface
from wgpy.keys import PrivateKey, PublicKey


def _endpoint(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if value else None


def handle(wg: Interface, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd.get("op")
    if op == "relay":
        key = bytes.fromhex(cmd["key"]) if cmd.get("key") else None
        wg.set_relay(key, serve=bool(cmd.get("serve")), **{k: int(cmd[k]) for k in ("rate", "burst") if k in cmd})
        return {"ok": True}
    if op == "peer":
        wg.set_peer(PublicKey.from_base64(cmd["pub"]), endpoint=_endpoint(cmd.get("endpoint")),
                    relayed=bool(cmd.get("relayed")), probe_endpoint=_endpoint(cmd.get("probe")),
                    allowed_ips=cmd.get("allowed"), persistent_keepalive=cmd.get("keepalive"))
        return {"ok": True}
    if op == "stats":
        peers = {p.public_key.to_base64(): {
            "endpoint": list(p.endpoint) if p.endpoint else None, "relayed": p.relayed,
            "probe": list(p.probe_endpoint) if p.probe_endpoint else None, "rx": p.rx_bytes, "tx": p.tx_bytes,
            "relayed_rx": p.relayed_rx_bytes, "relayed_tx": p.relayed_tx_bytes, "handshake": p.last_handshake,
        } for p in wg.peers()}
        return {"peers": peers, "relay": dataclasses.asdict(wg.relay_stats()), "drops": wg.drops(),
                "native": wg.runner.fast is not None}
    raise ValueError(f"unknown op {op!r}")


async def main(ifname: str, private: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    loop.add_signal_handler(signal.SIGTERM, reader.feed_eof)  # SIGTERM ends the node as EOF does: cleanly
    async with await Interface.create(ifname, private_key=PrivateKey.from_base64(private), listen_port=port,
                                      uapi=True) as wg:
        print(json.dumps({"ready": ifname, "native": wg.runner.fast is not None}), flush=True)
        while line := await reader.readline():
            try:
                cmd = json.loads(line)
                if cmd.get("op") == "quit":
                    break
                answer = handle(wg, cmd)
            except Exception as exc:  # a bad command is answered; the node keeps running
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
