#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: Debian packages, a venv,
# the package with its test extras, mypy strict on the core, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    python3-venv python3-dev gcc libc6-dev libssl-dev iproute2 iputils-ping \
    wireguard-go wireguard-tools iperf3 nftables iptables procps >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[kubespan,test]'
echo "== mypy (strict, core)"
.venv/bin/python -m mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
