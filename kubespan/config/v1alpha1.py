"""The legacy reader: what KubeSpan needs from the v1alpha1 document (no ``kind``).

Contract: ``machine.network.kubespan`` (read by ``fields.kubespan_section``), ``machine.network.hostname``,
``machine.type``, ``cluster.id``, ``cluster.secret``, ``cluster.network.podSubnets``/``serviceSubnets`` and
``cluster.controlPlane.localAPIServerPort`` (``kubernetes``; other keys of those two Talos sections are not
ours to check) and ``cluster.discovery``: ``cluster_discovery``
returns ``None`` without a ``cluster.discovery`` block, ``()`` when discovery or the service registry is
disabled, else the one service (default ``https://discovery.talos.dev/``, named ``legacy``, whose path
must be empty or ``/``).  ``machine_type`` maps ``join`` and an absent value to ``worker`` as Talos does.
Every problem is a ``ConfigError`` naming the YAML path.  Pure.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..filters import IPNetwork
from .fields import boolean, check_fields, cidrs, join, mapping, parse_discovery_endpoint, show, string
from .model import (DEFAULT_API_SERVER_PORT, DEFAULT_DISCOVERY_ENDPOINT, DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET,
                    LEGACY_ENDPOINT_NAME, DiscoveryEndpoint)

# ``cluster.discovery`` as pkg/machinery/config/types/v1alpha1/v1alpha1_types.go names it:
DISCOVERY_FIELDS = ("enabled", "registries")  # ClusterDiscoveryConfig
REGISTRIES_FIELDS = ("kubernetes", "service")  # DiscoveryRegistriesConfig
KUBERNETES_REGISTRY_FIELDS = ("disabled",)  # RegistryKubernetesConfig
SERVICE_REGISTRY_FIELDS = ("disabled", "endpoint")  # RegistryServiceConfig

MACHINE_TYPES = {"controlplane": "controlplane", "init": "init", "worker": "worker", "join": "worker", "": "worker"}


def sections(legacy: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``machine``, ``machine.network`` and ``cluster`` (empty when absent)."""
    machine = mapping(legacy, "machine", "") or {}
    network = mapping(machine, "network", "machine") or {}
    cluster = mapping(legacy, "cluster", "") or {}
    return machine, network, cluster


def cluster_discovery(cluster: dict[str, Any]) -> tuple[DiscoveryEndpoint, ...] | None:
    legacy = mapping(cluster, "discovery", "cluster")
    if legacy is None:
        return None
    check_fields(legacy, DISCOVERY_FIELDS, "cluster.discovery")
    registries = mapping(legacy, "registries", "cluster.discovery") or {}
    path = "cluster.discovery.registries"
    check_fields(registries, REGISTRIES_FIELDS, path)
    check_fields(mapping(registries, "kubernetes", path) or {}, KUBERNETES_REGISTRY_FIELDS, join(path, "kubernetes"))
    service = mapping(registries, "service", path) or {}
    service_path = join(path, "service")
    check_fields(service, SERVICE_REGISTRY_FIELDS, service_path)
    if not boolean(legacy, "enabled", "cluster.discovery"):
        return ()
    if boolean(service, "disabled", service_path):
        return ()
    url = service.get("endpoint")
    if url is None or url == "":
        url = DEFAULT_DISCOVERY_ENDPOINT
    return (parse_discovery_endpoint(LEGACY_ENDPOINT_NAME, url, join(service_path, "endpoint"), legacy=True),)


def identity_fields(cluster: dict[str, Any]) -> tuple[str, str]:
    """``cluster.id`` and ``cluster.secret`` (``""`` when absent)."""
    return string(cluster, "id", "cluster") or "", string(cluster, "secret", "cluster", secret=True) or ""


def kubernetes(cluster: dict[str, Any]) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...], int]:
    """Pod subnets, service subnets and the local API server port.

    Talos (``v1alpha1_clusterconfig.go`` ``PodCIDRs``/``ServiceCIDRs``/``LocalAPIServerPort``): an empty or
    absent list means the default subnet, an absent or zero port means 6443.  ``controlPlane.endpoint`` is the
    load-balanced URL clients use, not the port this node's API server listens on, so it is not read.
    """
    network = mapping(cluster, "network", "cluster") or {}
    control_plane = mapping(cluster, "controlPlane", "cluster") or {}
    port = control_plane.get("localAPIServerPort")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF):
        raise ConfigError("cluster.controlPlane.localAPIServerPort", f"{show(port)} is not a port number")
    return (cidrs(network, "podSubnets", "cluster.network") or (DEFAULT_POD_SUBNET,),
            cidrs(network, "serviceSubnets", "cluster.network") or (DEFAULT_SERVICE_SUBNET,),
            port or DEFAULT_API_SERVER_PORT)


def machine_type(machine: dict[str, Any]) -> str:
    value = string(machine, "type", "machine") or ""
    if value not in MACHINE_TYPES:
        raise ConfigError("machine.type", f"{show(value)} is not one of controlplane, worker, init")
    return MACHINE_TYPES[value]
