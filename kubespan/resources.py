"""Talos resource shapes kubespan persists or shows (identity part only).

Contract: the YAML field names of Talos' ``ClusterIdentitySpec``
(``Identities.cluster.talos.dev``, ID ``local``; file ``node-identity.yaml``)
and ``KubeSpanIdentitySpec`` (``KubeSpanIdentities.kubespan.talos.dev``, ID
``local``; file ``kubespan-identity.yaml``), kubespan.md §1, §2 and §8.  Plain
data plus mapping converters; no I/O, no validation beyond shape (the
identity module validates values).  ``repr`` never shows the private key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_IDENTITY_FILE = "node-identity.yaml"
KUBESPAN_IDENTITY_FILE = "kubespan-identity.yaml"
RESOURCE_ID_LOCAL = "local"


@dataclass(frozen=True, slots=True)
class ClusterIdentitySpec:
    """``Identities.cluster.talos.dev``: YAML key ``nodeId``."""

    node_id: str

    def to_mapping(self) -> dict[str, Any]:
        return {"nodeId": self.node_id}


@dataclass(frozen=True, slots=True)
class KubeSpanIdentitySpec:
    """``KubeSpanIdentities.kubespan.talos.dev``.

    YAML keys ``address``, ``subnet``, ``privateKey``, ``publicKey``; keys are
    std base64.  Talos persists ``address`` and ``subnet`` empty and
    recomputes them on every boot; only the keys survive.
    """

    private_key: str = field(repr=False)
    public_key: str
    address: str = ""
    subnet: str = ""

    def to_mapping(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "subnet": self.subnet,
            "privateKey": self.private_key,
            "publicKey": self.public_key,
        }
