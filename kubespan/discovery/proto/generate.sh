#!/bin/sh
# Regenerate the Python modules of kubespan/discovery/proto from the .proto files.
# Run from anywhere; uses the project venv's grpcio-tools.  Protos are compiled
# with the repository root as include path, so the generated imports are
# absolute package imports (kubespan.discovery.proto.*_pb2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
cd "$root"
"$python" -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. \
  kubespan/discovery/proto/cluster.proto \
  kubespan/discovery/proto/affiliate.proto \
  kubespan/discovery/proto/storage.proto \
  kubespan/discovery/proto/etcd.proto
# No *_pb2_grpc.py: the service glue is hand-written, typed, in ../rpc.py.
# The generated stubs use bare Mapping; keep mypy --strict quiet about them.
for f in kubespan/discovery/proto/*_pb2.pyi; do
  grep -q '^# mypy: disable-error-code' "$f" || sed -i '1i # mypy: disable-error-code="type-arg"' "$f"
done
