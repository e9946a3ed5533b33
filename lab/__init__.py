"""The network-namespace lab: shared by the tests, the benchmarks and the demo; not installed.

``lab.netns``: commands, namespaces and process stops (the one copy the integration tests, the bench and
the KubeSpan lab use).  ``lab.mesh``: the KubeSpan lab (internet router, NAT routers, nodes, the discovery
service and agents).  ``lab.traffic``: checked TCP transfers.  ``lab.demo``: ``python -m lab.demo``, the
README's mesh demo (``bash lab/demo.sh``).  Everything here needs root and creates only namespaces it
removes again.
"""
