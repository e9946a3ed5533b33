"""Talos machine configuration → typed, validated KubeSpan node configuration, and ``gen config``.

Contract (kubespan.md §7 "Configuration surface", §3.4 endpoint
normalisation, §5 "Endpoint filters"): ``parse_config(text)`` /
``load_config(path)`` accept a Talos machine config as users already have it
and return a frozen ``NodeConfig``, or raise ``ConfigError`` (never
``TypeError``/``KeyError``/``AttributeError``/a YAML exception).  Every error
names the YAML path and the offending value; a secret value is shown as
``<redacted>``.

Accepted documents (``yaml.safe_load_all``):

- the v1alpha1 document (no ``kind``; ``version: v1alpha1``), legacy fields
  ``machine.network.kubespan.*``, ``machine.network.hostname``,
  ``cluster.id``, ``cluster.secret``, ``cluster.discovery.*``,
  ``cluster.network.podSubnets``/``serviceSubnets`` (defaults 10.244.0.0/16 and
  10.96.0.0/12; never advertised as node addresses) and
  ``cluster.controlPlane.localAPIServerPort`` (default 6443; advertised by
  control-plane machines);
- ``KubeSpanConfig``, ``KubeSpanEndpointsConfig`` (also spelled
  ``KubespanEndpointsConfig``), ``DiscoveryServiceConfig`` (several, unique
  names), ``DiscoveryIdentityConfig`` and ``HostnameConfig``, all
  ``apiVersion: v1alpha1``.

Mistakes fail loudly: inside the sections we model (``machine.network.kubespan``,
``cluster.discovery``, the KubeSpan and discovery documents) an unknown key is
an error at its YAML path, as Talos decodes them with known fields only (with
the nearest field as a hint); a ``kind`` Talos does not define is an error
(with the nearest kind as a hint); a config with no YAML document at all is an
error.  The other Talos sections and kinds are ignored.  As in Talos, a
multi-document kind next to its legacy counterpart is an error:
``KubeSpanConfig`` vs a ``machine.network.kubespan`` block,
``DiscoveryServiceConfig`` vs any ``cluster.discovery`` block,
``DiscoveryIdentityConfig`` vs a non-empty ``cluster.id``/``cluster.secret``.

Defaults and validation as Talos: booleans false, MTU 1420 (≥ 1280; we also
cap it at 65535, the largest link MTU); filters parse after stripping ``!``;
``excludeAdvertisedNetworks`` entries are CIDRs; the cluster secret is std
base64 of exactly 32 bytes; the cluster ID is opaque and non-empty;
KubeSpan needs at least one discovery service endpoint (legacy: discovery
enabled and the service registry not disabled; default endpoint
``https://discovery.talos.dev/`` named ``legacy``, whose path must be empty
or ``/``).  Discovery or KubeSpan needs the cluster identity.  Extra
announced endpoints are ``ip:port`` (IPv6 in brackets, no zone; we reject
port 0).

wgpy extension: ``podCIDRs`` (a list of CIDRs) under
``machine.network.kubespan`` or in the ``KubeSpanConfig`` document gives the
node's pod CIDRs for ``advertiseKubernetesNetworks`` — a non-Talos host has
no Kubernetes ``Node`` object to read ``spec.podCIDRs`` from.  Talos itself
would reject the unknown key.

wgpy extension: ``relay`` (a boolean, default false) under
``machine.network.kubespan`` or in the ``KubeSpanConfig`` document makes
this node a relay for pairs of members that cannot reach each other (issue
14, ``kubespan.relay``); it is announced in a discovery field of our own
that Talos ignores.  Talos itself would reject the unknown key.

Modules: ``model`` (the result types and defaults), ``fields`` (typed YAML access and the value parsers
both readers share), ``v1alpha1`` (the legacy document), ``documents`` (the multi-document kinds),
``reader`` (loads the YAML and merges the two readers under the conflict rules: ``parse_config``,
``load_config``), ``generate`` (``gen config``).  This file re-exports the public names.
"""

from __future__ import annotations

from ..errors import ConfigError, KubespanError
from .fields import parse_discovery_endpoint
from .generate import existing_identity, gen_config_documents, render_gen_config
from .model import (API_VERSION, CLUSTER_SECRET_BYTES, DEFAULT_DISCOVERY_ENDPOINT, DEFAULT_MTU,
                    LEGACY_ENDPOINT_NAME, MAX_MTU, MIN_MTU, ClusterIdentity, DiscoveryEndpoint, KubeSpanConfig,
                    NodeConfig)
from .reader import load_config, parse_config, read_config_text

__all__ = ["API_VERSION", "CLUSTER_SECRET_BYTES", "DEFAULT_DISCOVERY_ENDPOINT", "DEFAULT_MTU",
           "LEGACY_ENDPOINT_NAME", "MAX_MTU", "MIN_MTU", "ClusterIdentity", "ConfigError", "DiscoveryEndpoint",
           "KubeSpanConfig", "KubespanError", "NodeConfig", "existing_identity", "gen_config_documents",
           "load_config", "parse_config", "parse_discovery_endpoint", "read_config_text", "render_gen_config"]
