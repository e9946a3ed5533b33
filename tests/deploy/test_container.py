"""The agent as a container runs it: PID 1 in fresh pid, mount and network namespaces, with
CAP_NET_ADMIN alone and /dev/net/tun, config from the environment or a file, logs on stdout,
exit 0 on SIGTERM, no kernel module, a read-only /sys.

No container runtime here, so ``unshare --pid --mount --net --fork`` builds what
``podman run --cap-drop ALL --cap-add NET_ADMIN --device /dev/net/tun`` would: an
init script (root, full capabilities, before the agent) mounts a read-only sysfs
of the new network namespace, a read-only /proc/sys, a /dev holding only
null/zero/random/urandom and net/tun, a private /run, and adds ``eth0`` (a veth
pair inside the namespace, as a runtime would), then ``exec``s ``setpriv`` with
the bounding set cut to CAP_NET_ADMIN and no inheritable capabilities, which
``exec``s the agent: the agent is PID 1.  Once it says READY=1 (fake
NOTIFY_SOCKET), a discovery service starts as a sidecar in the agent's network
namespace (``nsenter --net``, like a second container of a pod) and a watcher
there sees the agent's affiliate arrive; the agent's capabilities, its mounts
and its link are read from outside; SIGTERM from outside must end it with 0.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest

from deploy_support import PYTHON, alive, env, kill_pid, notify_socket, sh, stop
from kubespan.config import render_gen_config
from kubespan.get import json_stream
from kubespan.config import parse_config

pytestmark = pytest.mark.root

CAP_NET_ADMIN = 12
INIT = """\
set -eu
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
mkdir /dev/net
mknod -m 0666 /dev/net/tun c 10 200
mknod -m 0666 /dev/null c 1 3; mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/random c 1 8; mknod -m 0666 /dev/urandom c 1 9
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
ip link set lo up
ip link add eth0 address 02:00:00:00:00:0c type veth peer name eth0-peer
ip link set eth0 up && ip link set eth0-peer up
exec setpriv --bounding-set -all,+net_admin --inh-caps -all --ambient-caps -all --no-new-privs -- "$@"
"""
WATCHER = """\
import asyncio, json, sys
from kubespan.config import parse_config
from kubespan.discovery.client import ClientTimers, DiscoveryClient, ServiceEndpoint

async def main() -> None:
    ident = parse_config(open(sys.argv[1]).read()).identity
    timers = ClientTimers(backoff_base=0.2, backoff_max=1.0)
    client = DiscoveryClient(ServiceEndpoint("127.0.0.1", int(sys.argv[2]), True), ident.cluster_id,
                             ident.cluster_secret, "watcher", timers=timers)
    await client.start()
    for _ in range(900):  # 90 s at most
        if client.affiliates():
            break
        await asyncio.sleep(0.1)
    print(json.dumps(sorted(client.affiliates())))
    await client.close(delete=False)

asyncio.run(main())
"""


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _mounts(pid: int) -> dict[str, str]:
    """mount point -> its per-mount options, from the process's own view."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out[fields[4]] = fields[5]
    return out


def _in_ns(pid: int, *argv: str, what: str = "--net") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--target={pid}", what, "--", *argv], capture_output=True, text=True,
                          timeout=60, env=env(), cwd="/")


@pytest.mark.parametrize("source", ["environment", "file"])
def test_agent_as_pid_1_with_only_cap_net_admin(source: str, tmp_path: Path) -> None:
    port = 20000 + secrets.randbelow(20000)  # the namespace is fresh: nothing else listens on its loopback
    config_text = render_gen_config(f"http://127.0.0.1:{port}", legacy=False)
    config = tmp_path / "machine.yaml"
    config.write_text(config_text)
    (tmp_path / "init.sh").write_text(INIT)
    (tmp_path / "watcher.py").write_text(WATCHER)
    agent_argv = [PYTHON, "-m", "kubespan", "agent", "--state-dir", str(tmp_path / "state"), "--reconcile-interval",
                  "2"]
    extra = {"KUBESPAN_CONFIG": config_text} if source == "environment" else {}
    if source == "file":
        agent_argv += ["--config", str(config)]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    sidecar: subprocess.Popen[bytes] | None = None
    with notify_socket(tmp_path / "notify") as sock, open(stdout, "wb") as out, open(stderr, "wb") as err:
        container = subprocess.Popen(
            ["unshare", "--pid", "--mount", "--net", "--fork", "--kill-child", "--mount-proc", "--",
             "sh", str(tmp_path / "init.sh"), *agent_argv],
            stdout=out, stderr=err, env=env(NOTIFY_SOCKET=sock.name, **extra), cwd="/")
        agent = -1
        try:
            fields, agent = sock.receive(container, timeout=120)
            assert fields["READY"] == "1"
            # PID 1 of its own pid namespace, with CAP_NET_ADMIN and nothing else
            assert _status(agent)["NSpid"].split()[-1] == "1"
            for caps in ("CapBnd", "CapPrm", "CapEff"):
                assert int(_status(agent)[caps], 16) == 1 << CAP_NET_ADMIN, (caps, _status(agent)[caps])
            assert int(_status(agent)["CapInh"], 16) == 0 and _status(agent)["NoNewPrivs"] == "1"
            mounts = _mounts(agent)
            assert mounts["/sys"].split(",")[0] == "ro" and mounts["/proc/sys"].split(",")[0] == "ro"
            assert sorted(os.listdir(f"/proc/{agent}/root/dev")) == ["net", "null", "random", "urandom", "zero"]
            # its interface is a TUN (no WireGuard module), configured, with the UAPI socket in its own /run
            link = _in_ns(agent, "ip", "-d", "-j", "link", "show", "kubespan")
            assert link.returncode == 0, link.stderr
            assert json.loads(link.stdout)[0]["linkinfo"]["info_kind"] == "tun"
            wg = _in_ns(agent, "wg", "show", "kubespan", "listen-port", what="--mount")
            assert wg.stdout.strip() == "51820", wg.stderr
            # a sidecar discovery service in the agent's network namespace; the agent publishes to it
            with open(tmp_path / "sidecar.log", "wb") as sidecar_log:
                sidecar = subprocess.Popen(
                    ["nsenter", f"--target={agent}", "--net", "--", PYTHON, "-m", "kubespan", "discovery-service",
                     "--listen", f"127.0.0.1:{port}", "--no-snapshots"],
                    stdout=sidecar_log, stderr=sidecar_log, env=env(), cwd="/")
            watched = _in_ns(agent, PYTHON, str(tmp_path / "watcher.py"), str(config), str(port))
            assert watched.returncode == 0, watched.stderr
            ident = parse_config(config_text).identity
            assert ident is not None
            node = sh(PYTHON, "-m", "kubespan", "get", "identities", "-o", "json", "--api-socket",
                      f"/proc/{agent}/root/run/kubespan/agent.sock")
            assert json.loads(watched.stdout) == [json_stream(node.stdout)[0]["spec"]["nodeId"]], watched.stdout
            # SIGTERM from outside its pid namespace reaches PID 1 because the agent handles it
            os.kill(agent, signal.SIGTERM)
            assert container.wait(60) == 0, stderr.read_text()
        finally:
            if sidecar is not None:
                stop(sidecar)
            stop(container)  # --kill-child: the agent dies with unshare
            if agent > 0 and alive(agent):
                kill_pid(agent)
    log = stdout.read_text()
    assert "created interface kubespan" in log and "interface kubespan removed" in log, log
    assert "ERROR" not in log and "Traceback" not in log, log
    assert stderr.read_text() == ""
    assert not [p for p in (tmp_path / "state").iterdir() if p.stat().st_mode & 0o077]  # keys stay 0600


def test_agent_without_a_config_is_a_usage_error(tmp_path: Path) -> None:
    environ = {k: v for k, v in env().items() if k != "KUBESPAN_CONFIG"}
    res = subprocess.run([PYTHON, "-m", "kubespan", "agent", "--state-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, env=environ, cwd="/")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1].endswith("error: the following arguments are required: --config"), res
    bad = subprocess.run([PYTHON, "-m", "kubespan", "agent", "--state-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, env=dict(environ, KUBESPAN_CONFIG="machine: [unclosed"), cwd="/")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("error: "), bad
    assert list(tmp_path.iterdir()) == []  # nothing created before the config was read


def test_containerfile_entry_is_the_tested_command() -> None:
    """The image runs the package's ``kubespan`` script with ``agent`` (what the unshare test runs), with the
    run flags granting exactly what that test grants; the image itself is not built here (no runtime)."""
    text = (Path(__file__).resolve().parents[2] / "deploy" / "Containerfile").read_text()
    directives = dict(line.split(" ", 1) for line in text.splitlines() if line[:1].isupper())
    entry, cmd = json.loads(directives["ENTRYPOINT"]), json.loads(directives["CMD"])
    assert entry == ["kubespan"] and cmd == ["agent"]
    res = subprocess.run([str(Path(PYTHON).parent / entry[0]), *cmd, "--help"], capture_output=True, text=True,
                         timeout=60, env=env())
    assert res.returncode == 0 and "--config FILE" in res.stdout, res.stderr
    assert "--cap-drop ALL --cap-add NET_ADMIN --device /dev/net/tun" in text
    assert "+net_admin" in INIT and "--bounding-set -all,+net_admin" in INIT
