"""``kubespan discovery-service``: the command line of the discovery service.

Contract: accepts every flag of upstream's command (siderolabs/discovery-service
cmd/discovery-service/main.go) with its meaning and default, spelled as Go's
``flag`` package takes them (``-addr :3000``, ``--addr=:3000``; booleans as
``-debug`` or ``-snapshots-enabled=false``; durations as ``1m``, ``10m0s``,
``300ms``), so a manifest written for upstream runs unchanged:

    -addr ADDR                     gRPC listen address (":3000", all interfaces)
    -certificate-path / -key-path  TLS (both or neither)
    -metrics-addr ADDR             Prometheus metrics at /metrics (":2122"; "" turns them off)
    -landing-addr, -debug-addr     accepted, nothing is served there: this service
                                   has no landing page or pprof endpoint
    -debug                         debug logging (also MODE=dev, as upstream)
    --log-format text|json         one JSON object per line with json (kubespan.logfmt)
    -gc-interval DURATION          1m
    -redirect-endpoint HOST:PORT   answer every Hello with this redirect
    -snapshots-enabled BOOL        true
    -snapshot-path PATH            /var/discovery-service/state.binpb
    -snapshot-interval DURATION    10m
    -trust-x-real-ip BOOL          see below
    -trust-first-x-forwarded-for BOOL

The one deliberate difference: upstream trusts ``X-Real-IP`` and the first
``X-Forwarded-For`` entry from anyone by default; here both are off unless
asked for (the two flags above, or ``--trust-proxy-headers`` for both),
because a client could otherwise claim any address and so escape the per-IP
rate limit.  kubespan's own older flags stay: ``--listen``, ``--tls-cert``,
``--tls-key``, ``--no-snapshots``, ``--redirect``, ``--rate-limit``,
``--rate-burst``, ``--watch-buffer``; a plain number is a duration in seconds.

Highly available mode (not upstream's): ``--etcd-endpoints URL[,URL...]``
keeps the state in etcd so that any number of replicas serve one state;
``--etcd-prefix`` (default ``/kubespan-discovery/``), ``--etcd-cacert``,
``--etcd-cert``, ``--etcd-key`` (TLS, as etcdctl's ``--cacert/--cert/--key``),
``--etcd-user`` with ``--etcd-password-file`` (or the environment variable
``KUBESPAN_ETCD_PASSWORD``; never the command line, which ``ps`` shows) and
``--etcd-timeout`` (per etcd call, default 2s).  Snapshots are off then.

Bad arguments: argparse's usage message on stderr, exit 2.  Everything the
service logs, errors included, goes to stderr with its level
(``2026-01-01 00:00:00,000 ERROR kubespan.discovery: ...``, or JSON); a
failure to start (the gRPC or the metrics address in use) exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence

from prometheus_client.registry import CollectorRegistry

from kubespan import logfmt
from kubespan.discovery import limits
from kubespan.discovery.etcd import DEFAULT_TIMEOUT, EtcdConfig, endpoints_arg
from kubespan.discovery.etcdstate import DEFAULT_PREFIX
from kubespan.discovery.service import DEFAULT_SNAPSHOT_PATH, ServiceConfig, serve
from wgpy import MetricsServer, notify_ready, parse_metrics_addr

log = logging.getLogger("kubespan.discovery")

UPSTREAM_DEFAULTS = {"addr": ":3000", "landing-addr": ":3001", "metrics-addr": ":2122", "debug-addr": ":2123"}
BOOL_FLAGS = ("debug", "snapshots-enabled", "trust-x-real-ip", "trust-first-x-forwarded-for")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go ``time.ParseDuration`` (``1m30s``, ``300ms``), or a plain number of seconds; positive."""
    value = text.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        sign = -1.0 if value.startswith("-") else 1.0
        body = value.lstrip("+-")
        pos, total = 0, 0.0
        while body and pos < len(body):
            m = _DURATION_PART.match(body, pos)
            if m is None:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if body and pos == len(body):
            seconds = sign * total
    if seconds is None or not 0 < seconds < 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"invalid duration {text[:40]!r} (e.g. 1m, 10m0s, 30s; must be > 0)")
    return seconds


def listen_address(value: str) -> str:
    """``[HOST]:PORT`` as Go's ``net.Listen`` takes it; an empty host is every interface."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected [HOST]:PORT, got {value[:60]!r}")
    return f"[::]:{port}" if host == "" else value


def _metrics_addr(text: str) -> str:
    if text == "":
        return text
    try:
        parse_metrics_addr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text[:40]!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text[:40]!r}")
    return value


def go_style_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite Go's ``-flag=BOOL`` into ``--flag`` / ``--no-flag`` for argparse; a bad
    boolean becomes an argument argparse rejects with a usage error."""
    out: list[str] = []
    for arg in argv:
        m = re.fullmatch(r"--?([a-z-]+)=(.*)", arg, re.DOTALL)
        if m and m.group(1) in BOOL_FLAGS:
            name, value = m.groups()
            if value in _GO_TRUE:
                arg = f"--{name}"
            elif value in _GO_FALSE:
                arg = f"--no-{name}"
            else:
                arg = f"--{name}=invalid boolean value {value[:40]!r}"  # argparse: "ignored explicit argument"
        out.append(arg)
    return out


def _flag(parser: argparse.ArgumentParser, name: str, *aliases: str, **kw: object) -> None:
    parser.add_argument(f"-{name}", f"--{name}", *aliases, **kw)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubespan discovery-service", allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sidero-compatible discovery service (stores only client-encrypted blobs).\n"
                    "Takes upstream discovery-service's flags, with Go's spellings (-flag, --flag=value).",
        epilog="Client-IP headers: upstream trusts X-Real-IP and the first X-Forwarded-For entry from anyone\n"
               "by default. Here both are OFF unless -trust-x-real-ip / -trust-first-x-forwarded-for\n"
               "(or --trust-proxy-headers) is given: otherwise any client could claim another address and\n"
               "escape the per-IP rate limit. Turn them on only behind a proxy that sets these headers.\n"
               "-landing-addr and -debug-addr are accepted for compatibility and do nothing:\n"
               "this service serves no landing page or pprof endpoint.")
    _flag(p, "addr", "--listen", dest="listen", type=listen_address, default=UPSTREAM_DEFAULTS["addr"],
          metavar="ADDR", help="gRPC listen address (default :3000, every interface)")
    _flag(p, "certificate-path", "--tls-cert", dest="tls_cert", metavar="PATH", help="TLS certificate (PEM)")
    _flag(p, "key-path", "--tls-key", dest="tls_key", metavar="PATH", help="TLS private key (PEM)")
    _flag(p, "metrics-addr", type=_metrics_addr, default=UPSTREAM_DEFAULTS["metrics-addr"], metavar="ADDR",
          help="Prometheus metrics at http://ADDR/metrics (default :2122; empty to disable)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="text lines, or one JSON object per line (time, level, logger, msg)")
    for name, what in (("landing-addr", "landing page"), ("debug-addr", "pprof/trace/expvar")):
        _flag(p, name, default=None, metavar="ADDR",
              help=f"accepted, does nothing: no {what} here (upstream default {UPSTREAM_DEFAULTS[name]})")
    p.add_argument("-debug", "--debug", action=argparse.BooleanOptionalAction, default=False,
                   help="debug logging (also when MODE=dev)")
    _flag(p, "gc-interval", type=parse_duration, default=60.0, metavar="DURATION",
          help="garbage collection interval (default 1m)")
    _flag(p, "redirect-endpoint", "--redirect", dest="redirect", metavar="HOST:PORT",
          help="redirect every client to this gRPC endpoint (e.g. example.com:443)")
    p.add_argument("-snapshots-enabled", "--snapshots-enabled", action=argparse.BooleanOptionalAction,
                   default=True, help="save and restore state snapshots (default true)")
    p.add_argument("--no-snapshots", dest="snapshots_enabled", action="store_false",
                   help="same as -snapshots-enabled=false")
    _flag(p, "snapshot-path", default=DEFAULT_SNAPSHOT_PATH, metavar="PATH",
          help=f"snapshot file (default {DEFAULT_SNAPSHOT_PATH})")
    _flag(p, "snapshot-interval", type=parse_duration, default=600.0, metavar="DURATION",
          help="interval between snapshots (default 10m)")
    p.add_argument("-trust-x-real-ip", "--trust-x-real-ip", action=argparse.BooleanOptionalAction, default=False,
                   help="take the client IP from X-Real-IP (default FALSE here, true upstream; see below)")
    p.add_argument("-trust-first-x-forwarded-for", "--trust-first-x-forwarded-for",
                   action=argparse.BooleanOptionalAction, default=False,
                   help="take the client IP from the first X-Forwarded-For entry (default FALSE here, true "
                        "upstream; see below)")
    p.add_argument("--trust-proxy-headers", action="store_true", help="both of the above")
    p.add_argument("--rate-limit", type=_rate, default=limits.RATE_LIMIT_PER_SECOND, metavar="PER_SECOND",
                   help=f"requests/s per client IP, 0 disables (default {limits.RATE_LIMIT_PER_SECOND:g})")
    p.add_argument("--rate-burst", type=_positive_int, default=limits.RATE_LIMIT_BURST, metavar="N")
    p.add_argument("--watch-buffer", type=_positive_int, default=limits.WATCH_BUFFER, metavar="N")
    ha = p.add_argument_group("highly available (state in etcd, any number of replicas)")
    ha.add_argument("--etcd-endpoints", type=_endpoints, metavar="URL[,URL...]",
                    help="etcd client URLs (http://HOST:PORT or https://...); turns snapshots off")
    ha.add_argument("--etcd-prefix", type=_prefix, default=DEFAULT_PREFIX, metavar="PREFIX",
                    help=f"key prefix of this service's state (default {DEFAULT_PREFIX})")
    ha.add_argument("--etcd-cacert", metavar="PATH", help="CA bundle that signed etcd's server certificates")
    ha.add_argument("--etcd-cert", metavar="PATH", help="client certificate for etcd (PEM)")
    ha.add_argument("--etcd-key", metavar="PATH", help="client private key for etcd (PEM)")
    ha.add_argument("--etcd-user", metavar="NAME", help="etcd user (password from --etcd-password-file "
                    "or $KUBESPAN_ETCD_PASSWORD)")
    ha.add_argument("--etcd-password-file", metavar="PATH", help="file holding the etcd user's password")
    ha.add_argument("--etcd-timeout", type=parse_duration, default=DEFAULT_TIMEOUT, metavar="DURATION",
                    help="deadline of each etcd call (default 2s)")
    return p


def _endpoints(text: str) -> tuple[str, ...]:
    try:
        return endpoints_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prefix(text: str) -> str:
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError("the etcd prefix must be a non-empty string")
    return text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse (exit 2 with usage on a mistake) and check flags that go together."""
    parser = build_parser()
    args = parser.parse_args(go_style_argv(argv))
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("-certificate-path and -key-path go together")
    etcd_only = [f for f in ("etcd_cacert", "etcd_cert", "etcd_key", "etcd_user", "etcd_password_file")
                 if getattr(args, f) is not None]
    if args.etcd_endpoints is None and etcd_only:
        parser.error(f"--{etcd_only[0].replace('_', '-')} needs --etcd-endpoints")
    if (args.etcd_cert is None) != (args.etcd_key is None):
        parser.error("--etcd-cert and --etcd-key go together")
    if args.etcd_password_file is not None and args.etcd_user is None:
        parser.error("--etcd-password-file needs --etcd-user")
    return args


def etcd_config(args: argparse.Namespace) -> EtcdConfig | None:
    """The etcd settings, reading the password (file or environment); OSError/ValueError on failure."""
    if args.etcd_endpoints is None:
        return None
    password = None
    if args.etcd_user is not None:
        if args.etcd_password_file is not None:
            with open(args.etcd_password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\r\n")
        else:
            password = os.environ.get("KUBESPAN_ETCD_PASSWORD")
            if password is None:
                raise ValueError("--etcd-user needs --etcd-password-file or $KUBESPAN_ETCD_PASSWORD")
    return EtcdConfig(args.etcd_endpoints, args.etcd_cacert, args.etcd_cert, args.etcd_key,
                      args.etcd_user, password, args.etcd_timeout)


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    return ServiceConfig(
        listen=args.listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        snapshot_path=args.snapshot_path if args.snapshots_enabled else None,
        snapshot_interval=args.snapshot_interval,
        gc_interval=args.gc_interval,
        redirect=args.redirect or None,
        trust_x_real_ip=args.trust_x_real_ip,
        trust_first_x_forwarded_for=args.trust_first_x_forwarded_for,
        trust_proxy_headers=args.trust_proxy_headers,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        watch_buffer=args.watch_buffer,
        etcd=etcd_config(args),
        etcd_prefix=args.etcd_prefix,
    )


def configure_logging(debug: bool, fmt: str = "text") -> None:
    logfmt.setup("debug" if debug else "info", fmt, sys.stderr)


async def _run(config: ServiceConfig, metrics_addr: str = "") -> None:
    server = await serve(config)
    metrics: MetricsServer | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notify_ready(f"listening on port {server.port}")  # systemd Type=notify
    try:
        if metrics_addr:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(server.metrics)
            metrics = MetricsServer(registry, metrics_addr)
            await metrics.start()
        notify_ready(f"listening on port {server.port}")  # systemd Type=notify
        await stop.wait()
    finally:
        log.info("shutting down")
        if metrics is not None:
            await metrics.close()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubespan discovery-service ARGS``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.debug or os.environ.get("MODE") == "dev", args.log_format)
    for flag in ("landing_addr", "debug_addr"):
        if getattr(args, flag):
            log.info("-%s %s: not served (no such endpoint in this service)", flag.replace("_", "-"),
                     getattr(args, flag))
    if args.trust_x_real_ip or args.trust_first_x_forwarded_for or args.trust_proxy_headers:
        log.warning("trusting client-IP headers from every client (X-Real-IP: %s, first X-Forwarded-For: %s)",
                    args.trust_x_real_ip or args.trust_proxy_headers,
                    args.trust_first_x_forwarded_for or args.trust_proxy_headers)
    try:
        config = config_from_args(args)
        if config.etcd is not None:
            log.info("state in etcd at %s (prefix %s); snapshots off", ",".join(config.etcd.endpoints),
                     config.etcd_prefix)
        asyncio.run(_run(config, args.metrics_addr))
    except (OSError, ValueError) as exc:
        log.error("service failed: %s", exc)
        return 1
    return 0
