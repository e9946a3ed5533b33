#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: install (tests/install.sh),
# mypy --strict on the core, then every pytest test (including the root-only
# network-namespace interop and mesh tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh
echo "== mypy (strict)"
.venv/bin/python -m mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
