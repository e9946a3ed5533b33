#!/usr/bin/env bash
# Install everything wgpy and kubespan need on a fresh Debian machine, as root:
# Debian packages (reference peers, build tools with the gcc sanitizer runtimes,
# network tools (tcpdump for the relay test), systemd-analyze and strace for the unit tests), then a venv in
# .venv with this package (native data plane built) and its extras.
# Idempotent; used by tests/run.sh and lab/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    python3-venv python3-dev gcc libc6-dev libssl-dev iproute2 iputils-ping \
    wireguard-go wireguard-tools iperf3 nftables iptables procps systemd strace etcd-server tcpdump \
    libasan8 libubsan1 libtsan2 >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[kubespan,test]'
