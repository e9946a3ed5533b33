"""KubeSpan discovery: the Sidero discovery-service protocol, client and server.

Modules (spec/kubespan.md §3):
  errors.py    DiscoveryPayloadError, LimitError (InvalidArgument/ResourceExhausted), SnapshotError
  protocol.py  affiliate payload model + client-side encryption (pure)
  limits.py    server limits (§3.5) and their validators (pure)
  record.py    one stored affiliate and its update rules, shared by both backends (pure)
  state.py     clusters/affiliates/subscriptions, garbage_collect(now) (pure)
  store.py     the backend interface of the service; MemoryStore over State (default)
  etcd.py      small etcd v3 client over grpc.aio (endpoint failover, TLS, auth, watch)
  etcdstate.py state in etcd for service replicas: keys, leases, watched mirror
  snapshot.py  state <-> StateSnapshot protobuf, atomic snapshot file
  ratelimit.py per-source token buckets (pure, now passed in)
  rpc.py       gRPC method table of sidero.discovery.server.Cluster
  url.py       discovery service URLs and host:port targets: the one parser (pure)
  service.py   grpc.aio server shell, the Cluster servicer
  command.py   `kubespan discovery-service`: upstream's flags (cmd/discovery-service/main.go)
  client.py    grpc.aio client: hello -> watch -> refresh every TTL/2
  proto/       .proto files (sidero.discovery.server/.client/.storage) + generated
               modules (etcd.proto: the subset of etcd's API we call); regenerate with
               proto/generate.sh

Import the submodules directly; this package file stays empty so that the
pure modules (protocol, limits, state) load without grpc.
"""
