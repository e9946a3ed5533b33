"""The ``kubespan`` command line (argparse; no logic beyond wiring).

Contract:

- ``kubespan gen config --with-kubespan [--discovery-endpoint URL] [--legacy]
  [--from-config FILE | --with-secrets FILE] [-o FILE] [--force]`` prints a
  working machine config with a fresh cluster ID and secret, or those of an
  existing Talos machine config or ``talosctl gen secrets`` bundle
  (``kubespan.config.generate``).  ``-o`` writes the file atomically with mode
  0600, refuses to overwrite without ``--force`` and to write into a directory
  that does not exist.
- ``kubespan discovery-service ARGS...`` hands every argument to
  ``kubespan.discovery.service.main(argv) -> int`` (imported lazily).
- ``kubespan agent [--config FILE] [--state-dir DIR] [--api-socket PATH]
  [--uapi-socket PATH|none] [--reconcile-interval SECONDS] [--mac MAC]
  [--log-level LEVEL] [--log-format text|json] [--metrics-addr HOST:PORT]
  [--no-nftables] [--no-relay]`` runs the agent in the foreground (``kubespan.agent``),
  logs to stdout (``kubespan.logfmt``), serves Prometheus metrics when asked
  (``kubespan.metrics``), exits 0 after cleanup on SIGTERM.
  Without ``--config`` the config YAML itself comes from ``$KUBESPAN_CONFIG``.
- ``kubespan leave [--api-socket PATH] [--config FILE] [--state-dir DIR]``
  deletes this node's affiliate and its identity (``kubespan.leave``): through
  the running agent, or with ``--config`` directly when none runs.  Stopping
  the agent never leaves.
- ``kubespan get TYPE [ID] [-w] [-o table|yaml|json|jsonpath=T] [--api-socket
  PATH]`` shows the agent's resources as talosctl does (``kubespan.get``;
  ``KUBESPAN_API_SOCKET`` honoured).
- Bad arguments: exit 2 with an argparse message.  Configuration or I/O
  errors: ``error: <message>`` on stderr, exit 1, no traceback.

The cluster secret is written only to the requested output, never logged.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from .config import (DEFAULT_DISCOVERY_ENDPOINT, existing_identity, parse_discovery_endpoint, read_config_text,
                     render_gen_config)
from .errors import ConfigError, KubespanError
from .identity import atomic_write

ENV_CONFIG = "KUBESPAN_CONFIG"


def _cmd_gen_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not args.with_kubespan:
        parser.error("only --with-kubespan configs are supported; pass --with-kubespan")
    try:
        parse_discovery_endpoint("default", args.discovery_endpoint, "--discovery-endpoint", legacy=args.legacy)
    except ConfigError as exc:
        parser.error(str(exc))
    source = args.from_config or args.with_secrets
    identity = existing_identity(read_config_text(source), source) if source else None
    text = render_gen_config(args.discovery_endpoint, args.legacy, identity=identity)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    if os.path.exists(args.output) and not args.force:
        raise KubespanError(f"{args.output}: already exists (use --force to overwrite)")
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):
        raise KubespanError(f"{args.output}: the directory {directory} does not exist")
    try:
        atomic_write(args.output, text.encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise KubespanError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    return 0


def _cmd_discovery_service(argv: Sequence[str]) -> int:
    try:
        module = importlib.import_module("kubespan.discovery.service")
    except ImportError as exc:
        print(f"error: the discovery service is not available: {exc}", file=sys.stderr)
        return 1
    result = module.main(list(argv))
    return int(result) if result is not None else 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds: {text!r}")
    return value


def _metrics_addr(text: str) -> str:
    from wgpy import parse_metrics_addr as parse_addr

    try:
        parse_addr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_agent(commands: Any) -> None:
    agent = commands.add_parser("agent", help="run the KubeSpan agent in the foreground")
    agent.add_argument("--config", metavar="FILE", required=ENV_CONFIG not in os.environ,
                       help=f"Talos machine config (YAML; default: the YAML in ${ENV_CONFIG})")
    agent.add_argument("--state-dir", default="/var/lib/kubespan", metavar="DIR",
                       help="where the node ID and key pair live (default /var/lib/kubespan)")
    agent.add_argument("--api-socket", default=None, metavar="PATH",
                       help="resource API socket (default $KUBESPAN_API_SOCKET or /run/kubespan/agent.sock)")
    agent.add_argument("--uapi-socket", default="/var/run/wireguard/kubespan.sock", metavar="PATH|none",
                       help="serve wg's UAPI here ('none' to disable; default /var/run/wireguard/kubespan.sock)")
    agent.add_argument("--reconcile-interval", type=_positive_float, default=30.0, metavar="SECONDS",
                       help="periodic reconcile interval (default 30)")
    agent.add_argument("--mac", default=None, metavar="MAC",
                       help="hardware address for the KubeSpan IPv6 address (default: first ethernet link)")
    agent.add_argument("--no-nftables", action="store_true",
                       help="route with 'not fwmark 0x20' and per-prefix routes instead of nftables marks")
    agent.add_argument("--no-relay", action="store_true",
                       help="never reach peers through relays nor accept relay frames, as a Talos node "
                            "(conflicts with 'relay: true' in the config)")
    agent.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    agent.add_argument("--log-format", default="text", choices=["text", "json"],
                       help="text lines, or one JSON object per line (time, level, logger, msg)")
    agent.add_argument("--metrics-addr", type=_metrics_addr, default=None, metavar="HOST:PORT",
                       help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")


def _output_format(text: str) -> Any:
    from .get import parse_output

    try:
        return parse_output(text)
    except KubespanError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_get(commands: Any) -> None:
    get = commands.add_parser("get", help="show the agent's resources (like talosctl get)",
                              description="Show the agent's resources like 'talosctl get TYPE [ID]'.")
    get.add_argument("resource", metavar="TYPE",
                     help="a type or alias as in Talos: kubespanidentities (ksi), kubespanpeerspecs, "
                          "kubespanpeerstatuses, kubespanendpoints (kse), affiliates, members, identities")
    get.add_argument("id", metavar="ID", nargs="?", default=None, help="only this resource")
    get.add_argument("-o", "--output", default="table", type=_output_format, metavar="FORMAT",
                     help="table (default), yaml, json or jsonpath=TEMPLATE")
    get.add_argument("-w", "--watch", action="store_true",
                     help="print the current resources, then every change as it happens")
    get.add_argument("--api-socket", default=None, metavar="PATH",
                     help="agent API socket (default $KUBESPAN_API_SOCKET or /run/kubespan/agent.sock)")


def _add_leave(commands: Any) -> None:
    leave = commands.add_parser("leave", help="leave the cluster: delete this node's affiliate and identity")
    leave.add_argument("--api-socket", default=None, metavar="PATH",
                       help="agent API socket (default $KUBESPAN_API_SOCKET or /run/kubespan/agent.sock)")
    leave.add_argument("--config", default=None, metavar="FILE",
                       help="machine config, to leave without a running agent")
    leave.add_argument("--state-dir", default="/var/lib/kubespan", metavar="DIR",
                       help="the agent's state directory (default /var/lib/kubespan)")


def _cmd_leave(args: argparse.Namespace) -> int:
    from .get import socket_path
    from .leave import leave

    print(leave(socket_path(args.api_socket), args.config, args.state_dir))
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    from . import agent as agent_module
    from .get import socket_path

    agent_module.configure_logging(args.log_level, args.log_format)
    uapi = None if args.uapi_socket.lower() == "none" else args.uapi_socket
    text = None if args.config else os.environ[ENV_CONFIG]  # containers pass the config in the environment
    options = agent_module.AgentOptions(
        config_path=args.config or f"${ENV_CONFIG}", config_text=text, state_dir=args.state_dir,
        api_socket=socket_path(args.api_socket),
        uapi_socket=uapi, reconcile_interval=args.reconcile_interval, mac=args.mac,
        use_nftables=False if args.no_nftables else None, metrics_addr=args.metrics_addr,
        relay=not args.no_relay,
    )
    return agent_module.run_agent(options)


def _cmd_get(args: argparse.Namespace) -> int:
    from .get import run

    return run(args.resource, args.id, args.output, args.api_socket, watch_changes=args.watch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubespan", description="Talos-KubeSpan-compatible mesh on wgpy.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser("gen", help="generate configuration")
    gen_commands = gen.add_subparsers(dest="gen_command", metavar="WHAT", required=True)
    config = gen_commands.add_parser("config", help="generate a machine config with KubeSpan enabled")
    config.add_argument("--with-kubespan", action="store_true", help="enable KubeSpan (required)")
    config.add_argument(
        "--discovery-endpoint",
        default=DEFAULT_DISCOVERY_ENDPOINT,
        metavar="URL",
        help=f"discovery service URL (http, https or grpc; default {DEFAULT_DISCOVERY_ENDPOINT})",
    )
    config.add_argument("--legacy", action="store_true", help="emit the v1alpha1 (Talos <= 1.12) form")
    join = config.add_mutually_exclusive_group()
    join.add_argument("--from-config", metavar="FILE",
                      help="join an existing cluster: take the cluster ID and secret from this Talos machine config")
    join.add_argument("--with-secrets", metavar="FILE",
                      help="join an existing cluster: take them from a 'talosctl gen secrets' bundle (secrets.yaml)")
    config.add_argument("-o", "--output", metavar="FILE", help="write to FILE (mode 0600) instead of stdout")
    config.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    config.set_defaults(subparser=config)

    _add_agent(commands)
    _add_get(commands)
    _add_leave(commands)
    commands.add_parser(
        "discovery-service",
        help="run a discovery service (all arguments are passed on; see 'kubespan discovery-service --help')",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "discovery-service":
        return _cmd_discovery_service(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "gen" and args.gen_command == "config":
            return _cmd_gen_config(args, args.subparser)
        if args.command == "agent":
            return _cmd_agent(args)
        if args.command == "get":
            return _cmd_get(args)
        if args.command == "leave":
            return _cmd_leave(args)
    except KubespanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover - parser.error exits
