"""``kubespan gen config``: the documents of a fresh KubeSpan-enabled machine config.

Contract (kubespan.md §7), like ``talosctl gen config --with-kubespan``: a fresh cluster ID and secret
(32 random bytes each from ``rng``, std base64); by default the Talos 1.14 documents ``KubeSpanConfig`` +
``DiscoveryServiceConfig`` (name ``default``) + ``DiscoveryIdentityConfig``; with ``legacy`` the
v1alpha1 form (``machine.network.kubespan`` + ``cluster.id``/``secret`` + ``cluster.discovery``).
``render_gen_config`` returns YAML that ``parse_config`` accepts (it checks).

Joining an existing cluster: ``existing_identity(text, source)`` reads the cluster ID and secret from a
Talos machine config (``cluster.id``/``cluster.secret`` of the v1alpha1 document, or a
``DiscoveryIdentityConfig`` document) or from a ``talosctl gen secrets`` bundle (``cluster.id`` and
``cluster.secret`` at the top level: siderolabs/talos pkg/machinery/config/generate/secrets/secrets.go,
``Bundle.Cluster``, YAML keys ``id`` and ``secret``); the generated config then carries them instead of
fresh ones.  No identity, two different ones, or a secret that is not std base64 of 32 bytes is a
``ConfigError`` naming the file (never the secret).  No I/O: the CLI reads and writes.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import yaml

from ..errors import ConfigError
from .documents import KIND_DISCOVERY_IDENTITY, identity_fields
from .fields import mapping, secret
from .model import DEFAULT_DISCOVERY_ENDPOINT
from .reader import load_documents, parse_config
from .v1alpha1 import identity_fields as legacy_identity_fields

Rng = Callable[[int], bytes]
SECRET_BYTES = 32


def _b64(rng: Rng) -> str:
    return base64.b64encode(rng(SECRET_BYTES)).decode("ascii")


def gen_config_documents(endpoint: str, legacy: bool, rng: Rng = os.urandom,
                         identity: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """The documents of a KubeSpan-enabled machine config: a fresh cluster ID and secret, or ``identity``."""
    cluster_id, cluster_secret = identity if identity is not None else (_b64(rng), _b64(rng))
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


def render_gen_config(endpoint: str, legacy: bool, rng: Rng = os.urandom,
                      identity: tuple[str, str] | None = None) -> str:
    """The YAML text of ``gen config``; validated with ``parse_config``."""
    docs = gen_config_documents(endpoint, legacy, rng, identity)
    text = yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False, explicit_start=False)
    parse_config(text)
    return text


def existing_identity(text: str, source: str) -> tuple[str, str]:
    """(cluster ID, cluster secret) of an existing Talos machine config or secrets bundle (see above)."""
    try:
        return _existing_identity(text)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.path}" if exc.path else source, exc.message) from None


def _existing_identity(text: str) -> tuple[str, str]:
    found: set[tuple[str, str]] = set()
    for index, doc in enumerate(load_documents(text), 1):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == KIND_DISCOVERY_IDENTITY:
            cluster_id, cluster_secret = identity_fields(doc)
            id_path, secret_path = f"{KIND_DISCOVERY_IDENTITY}.clusterID", f"{KIND_DISCOVERY_IDENTITY}.clusterSecret"
        elif "kind" not in doc:  # the v1alpha1 document, or a secrets bundle: both say cluster.id/secret
            cluster_id, cluster_secret = legacy_identity_fields(mapping(doc, "cluster", "") or {})
            id_path, secret_path = "cluster.id", "cluster.secret"
        else:
            continue
        if not cluster_id and not cluster_secret:
            continue
        if not cluster_id or not cluster_secret:
            raise ConfigError(id_path if not cluster_id else secret_path, f"is missing (document {index})")
        found.add((cluster_id, secret(cluster_secret, secret_path)[1]))
    if not found:
        raise ConfigError("", "has no cluster identity (cluster.id and cluster.secret, or a DiscoveryIdentityConfig "
                              "document)")
    if len(found) > 1:
        raise ConfigError("", "has two different cluster identities")
    return found.pop()
