#!/usr/bin/env bash
# The local mesh demo on a fresh machine, as root: install what it needs
# (tests/install.sh: Debian packages, a venv, this package), then run
# `python -m lab.demo`: a discovery service and 3 kubespan agents in
# network namespaces, their peer statuses, a transfer through the mesh, cleanup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh
exec .venv/bin/python -m lab.demo "$@"
