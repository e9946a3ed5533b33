"""``kubespan gen config``: the documents of a fresh KubeSpan-enabled machine config.

Contract (kubespan.md §7), like ``talosctl gen config --with-kubespan``: a fresh cluster ID and secret
(32 random bytes each from ``rng``, std base64); by default the Talos 1.14 documents ``KubeSpanConfig`` +
``DiscoveryServiceConfig`` (name ``default``) + ``DiscoveryIdentityConfig``; with ``legacy`` the
v1alpha1 form (``machine.network.kubespan`` + ``cluster.id``/``secret`` + ``cluster.discovery``).
``render_gen_config`` returns YAML that ``parse_config`` accepts (it checks).  No I/O: the CLI writes.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import yaml

from .model import DEFAULT_DISCOVERY_ENDPOINT
from .reader import parse_config

Rng = Callable[[int], bytes]
SECRET_BYTES = 32


def _b64(rng: Rng) -> str:
    return base64.b64encode(rng(SECRET_BYTES)).decode("ascii")


def gen_config_documents(endpoint: str, legacy: bool, rng: Rng = os.urandom) -> list[dict[str, Any]]:
    """The documents of a fresh KubeSpan-enabled machine config."""
    cluster_id, cluster_secret = _b64(rng), _b64(rng)
    if legacy:
        service: dict[str, Any] = {} if endpoint == DEFAULT_DISCOVERY_ENDPOINT else {"endpoint": endpoint}
        return [
            {
                "version": "v1alpha1",
                "machine": {"network": {"kubespan": {"enabled": True}}},
                "cluster": {
                    "id": cluster_id,
                    "secret": cluster_secret,
                    "discovery": {
                        "enabled": True,
                        "registries": {"kubernetes": {"disabled": True}, "service": service},
                    },
                },
            }
        ]
    return [
        {"apiVersion": "v1alpha1", "kind": "KubeSpanConfig", "enabled": True},
        {"apiVersion": "v1alpha1", "kind": "DiscoveryServiceConfig", "name": "default", "endpoint": endpoint},
        {"apiVersion": "v1alpha1", "kind": "DiscoveryIdentityConfig", "clusterID": cluster_id, "clusterSecret": cluster_secret},
    ]


def render_gen_config(endpoint: str, legacy: bool, rng: Rng = os.urandom) -> str:
    """The YAML text of ``gen config``; validated with ``parse_config``."""
    docs = gen_config_documents(endpoint, legacy, rng)
    text = yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False, explicit_start=False)
    parse_config(text)
    return text
