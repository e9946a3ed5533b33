"""``parse_config`` / ``load_config``: load the YAML, sort the documents, merge the two readers.

Contract: see the package docstring (``kubespan.config``).  A multi-document kind next to its legacy
counterpart is a ``ConfigError``; KubeSpan without a discovery service, and KubeSpan or discovery without
the cluster identity, are errors.  Pure apart from ``load_config`` reading one file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from ..errors import ConfigError
from ..filters import IPNetwork
from . import v1alpha1
from .documents import (KIND_DISCOVERY_IDENTITY, KIND_DISCOVERY_SERVICE, KIND_HOSTNAME, KIND_KUBESPAN, Documents,
                        identity_fields, service_endpoints, split_documents)
from .fields import extra_endpoints, kubespan_section, mapping, secret, string
from .model import ClusterIdentity, DiscoveryEndpoint, KubeSpanConfig, NodeConfig


def load_documents(text: str) -> list[Any]:
    if not isinstance(text, str):
        raise TypeError("parse_config needs a str")
    try:
        return list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError("", f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{where}") from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise ConfigError("", f"invalid YAML: {type(exc).__name__}") from None


def _discovery(docs: Documents, cluster: dict[str, Any]) -> tuple[DiscoveryEndpoint, ...]:
    legacy = mapping(cluster, "discovery", "cluster")
    if docs.services:
        if legacy is not None:
            raise ConfigError(KIND_DISCOVERY_SERVICE, "conflicts with cluster.discovery in the v1alpha1 document (remove one of them)")
        return service_endpoints(docs.services)
    return v1alpha1.cluster_discovery(cluster) or ()


def _identity(docs: Documents, cluster: dict[str, Any], needed: bool) -> ClusterIdentity | None:
    legacy_id, legacy_secret = v1alpha1.identity_fields(cluster)
    if docs.identity is not None:
        if legacy_id or legacy_secret:
            raise ConfigError(KIND_DISCOVERY_IDENTITY, "conflicts with cluster.id/cluster.secret in the v1alpha1 document (remove one of them)")
        cluster_id, secret_text = identity_fields(docs.identity)
        id_path, secret_path = f"{KIND_DISCOVERY_IDENTITY}.clusterID", f"{KIND_DISCOVERY_IDENTITY}.clusterSecret"
        needed = True
    else:
        cluster_id, secret_text, id_path, secret_path = legacy_id, legacy_secret, "cluster.id", "cluster.secret"
    decoded = secret(secret_text, secret_path) if secret_text else None
    if not cluster_id or decoded is None:
        if not needed:
            return None
        missing = id_path if not cluster_id else secret_path
        if docs.identity is not None:
            raise ConfigError(missing, "is required")
        raise ConfigError(missing, "is required when KubeSpan or cluster discovery is enabled (set cluster.id and cluster.secret, or a DiscoveryIdentityConfig document)")
    return ClusterIdentity(cluster_id=cluster_id, cluster_secret=decoded[0], cluster_secret_b64=decoded[1])


def _build(docs: Documents) -> NodeConfig:
    machine, network, cluster = v1alpha1.sections(docs.legacy or {})
    legacy_ks = mapping(network, "kubespan", "machine.network")
    kubespan = KubeSpanConfig()
    pod_cidrs: tuple[IPNetwork, ...] = ()
    if docs.kubespan is not None:
        if legacy_ks is not None:
            raise ConfigError(KIND_KUBESPAN, "conflicts with machine.network.kubespan in the v1alpha1 document (remove one of them)")
        kubespan, pod_cidrs = kubespan_section(docs.kubespan, KIND_KUBESPAN, document=True)
    elif legacy_ks is not None:
        kubespan, pod_cidrs = kubespan_section(legacy_ks, "machine.network.kubespan")
    if docs.endpoints is not None:
        extra = extra_endpoints(docs.endpoints, docs.endpoints_kind)
        kubespan = dataclasses.replace(kubespan, extra_announced_endpoints=extra)
    endpoints = _discovery(docs, cluster)
    if kubespan.enabled and not endpoints:
        raise ConfigError("cluster.discovery", "KubeSpan is enabled but no discovery service is configured (add a DiscoveryServiceConfig document, or set cluster.discovery.enabled: true without disabling the service registry)")
    identity = _identity(docs, cluster, needed=kubespan.enabled or bool(endpoints))
    node_name = string(network, "hostname", "machine.network")
    if docs.hostname is not None:
        node_name = string(docs.hostname, "hostname", KIND_HOSTNAME) or node_name
    pod_subnets, service_subnets, api_server_port = v1alpha1.kubernetes(cluster)
    return NodeConfig(
        kubespan=kubespan,
        discovery_endpoints=endpoints,
        identity=identity,
        node_name=node_name or None,
        pod_cidrs=pod_cidrs,
        machine_type=v1alpha1.machine_type(machine),
        pod_subnets=pod_subnets,
        service_subnets=service_subnets,
        api_server_port=api_server_port,
    )


# --- entry points --------------------------------------------------------------------


def parse_config(text: str) -> NodeConfig:
    """Parse a Talos machine config (one or more YAML documents; none at all is an error)."""
    docs = load_documents(text)
    if all(doc is None for doc in docs):
        raise ConfigError("", "the config is empty (no YAML document)")
    return _build(split_documents(docs))


def read_config_text(path: str) -> str:
    """The UTF-8 text of the file at ``path`` (``ConfigError`` naming the file otherwise)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "not UTF-8 text") from None


def load_config(path: str) -> NodeConfig:
    """Read and parse the machine config file at ``path``."""
    return parse_config(read_config_text(path))
