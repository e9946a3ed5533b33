"""KubeSpan discovery: the Sidero discovery-service protocol, client and server.

Modules (spec/kubespan.md §3):
  errors.py    DiscoveryPayloadError, LimitError (InvalidArgument/ResourceExhausted), SnapshotError
  protocol.py  affiliate payload model + client-side encryption (pure)
  limits.py    server limits (§3.5) and their validators (pure)
  state.py     clusters/affiliates/subscriptions, garbage_collect(now) (pure)
  snapshot.py  state <-> StateSnapshot protobuf, atomic snapshot file
  ratelimit.py per-source token buckets (pure, now passed in)
  rpc.py       gRPC method table of sidero.discovery.server.Cluster
  service.py   grpc.aio server shell
  command.py   `kubespan discovery-service`: upstream's flags (cmd/discovery-service/main.go)
  client.py    grpc.aio client: hello -> watch -> refresh every TTL/2
  proto/       .proto files (sidero.discovery.server/.client/.storage) + generated
               modules; regenerate with proto/generate.sh

Import the submodules directly; this package file stays empty so that the
pure modules (protocol, limits, state) load without grpc.
"""
