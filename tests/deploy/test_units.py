"""The shipped systemd units (``deploy/systemd``) pass ``systemd-analyze verify``, warning-free.

``verify`` needs each ``ExecStart`` binary to exist, so the test verifies
copies whose ``/usr/local/bin/`` (where a system-wide install puts the
scripts) points at this interpreter's scripts directory.  Unknown keys are
only warnings for ``verify``, so any output fails the test; a control copy
with a bogus key proves that ``verify`` read each file (and the
``wg-quick@.service.d`` drop-in from beside Debian's ``wg-quick@.service``).
That the drop-in's variable makes wg-quick run wgpy is
``tests/integration/test_wgquick.py``; that the processes say ``READY=1`` is
``test_notify.py``; the agent's system calls are traced against its
``SystemCallFilter=`` here; that the agent runs with CAP_NET_ADMIN alone, no writable
/sys and no module is ``test_container.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy_support import PYTHON, env, netns, notify_socket, popen, stop
from kubespan.config import render_gen_config

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
SCRIPTS = Path(sys.executable).parent
WG_QUICK_UNIT = Path("/lib/systemd/system/wg-quick@.service")
PROBE = "WgpyVerifyProbe=1"


def _verify(*units: Path) -> str:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd; tests/install.sh installs it)"
    res = subprocess.run([analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True,
                         timeout=120)
    out = (res.stdout + res.stderr).strip()
    return out if res.returncode == 0 else f"exit {res.returncode}: {out}"


def _install(tmp: Path, name: str, extra: str = "") -> Path:
    text = (UNITS / name).read_text().replace("/usr/local/bin/", f"{SCRIPTS}/")
    assert f"{SCRIPTS}/" in text or "ExecStart" not in text
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + extra)
    return path


def _settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("unit", ["kubespan-agent.service", "kubespan-discovery.service", "wgpy@.service"])
def test_unit_verifies_without_warnings(unit: str, tmp_path: Path) -> None:
    for name in ("kubespan", "wgpy"):
        assert (SCRIPTS / name).exists(), f"{SCRIPTS / name}: the package's scripts are not installed"
    good, probe = tmp_path / "good", tmp_path / "probe"
    target = unit.replace("@.", "@wg0.")  # a template is verified through an instance
    _install(good, unit)
    assert _verify(good / target) == ""
    _install(probe, unit, f"\n[Service]\n{PROBE}\n")
    assert "WgpyVerifyProbe" in _verify(probe / target)


def test_wg_quick_drop_in_verifies_and_selects_wgpy(tmp_path: Path) -> None:
    assert WG_QUICK_UNIT.exists(), "wireguard-tools' wg-quick@.service is missing"
    assert _settings("wg-quick@.service.d/wgpy.conf") == {"Environment": ["WG_QUICK_USERSPACE_IMPLEMENTATION=wgpy"]}
    good, probe = tmp_path / "good", tmp_path / "probe"
    for root, extra in ((good, ""), (probe, f"{PROBE}\n")):
        root.mkdir(exist_ok=True)
        shutil.copy(WG_QUICK_UNIT, root / WG_QUICK_UNIT.name)
        _install(root, "wg-quick@.service.d/wgpy.conf", extra)
    assert _verify(good / "wg-quick@wg0.service") == ""
    assert "WgpyVerifyProbe" in _verify(probe / "wg-quick@wg0.service")


def test_sandboxing_grants_each_process_only_what_it_needs() -> None:
    agent, service, daemon = (_settings(n) for n in
                              ("kubespan-agent.service", "kubespan-discovery.service", "wgpy@.service"))
    for unit in (agent, service, daemon):
        assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
        assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]
        assert unit["ProtectKernelModules"] == ["yes"] and unit["ProtectKernelTunables"] == ["yes"]
    assert agent["CapabilityBoundingSet"] == daemon["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert agent["DeviceAllow"] == daemon["DeviceAllow"] == ["/dev/net/tun rw"]
    assert service["CapabilityBoundingSet"] == [""] and service["DynamicUser"] == ["yes"]
    assert service["PrivateDevices"] == ["yes"]
    assert agent["ExecStart"][0].startswith("/usr/local/bin/kubespan agent ")
    assert daemon["ExecStart"] == ["/usr/local/bin/wgpy -f %i"]  # -f: the process systemd starts notifies


def _filter_set(group: str) -> set[str]:
    """The system calls a ``SystemCallFilter=`` group allows, nested groups expanded."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, timeout=60).stdout
    groups: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = set()
        elif line.startswith("    ") and current and not line.strip().startswith("#"):
            groups[current].add(line.strip())

    def expand(name: str, depth: int = 0) -> set[str]:
        assert depth < 10, name
        out: set[str] = set()
        for item in groups[name]:
            out |= expand(item, depth + 1) if item.startswith("@") else {item}
        return out

    return expand(group)


@pytest.mark.root
def test_every_system_call_of_the_agent_passes_its_unit_filter(tmp_path: Path) -> None:
    """The agent (and its nft children) under strace, start to clean exit: nothing outside @system-service."""
    (group,) = _settings("kubespan-agent.service")["SystemCallFilter"]
    allowed = _filter_set(group)
    assert {"ioctl", "recvmmsg", "sendmmsg", "sendto"} <= allowed
    config = tmp_path / "machine.yaml"
    config.write_text(render_gen_config("http://127.0.0.1:1", legacy=False))
    summary = tmp_path / "strace.txt"
    with netns("h6f") as ns, notify_socket(tmp_path / "notify") as sock:
        proc = popen(["ip", "netns", "exec", ns, "strace", "-f", "-qq", "-c", "-o", str(summary), PYTHON, "-m",
                      "kubespan", "agent", "--config", str(config), "--state-dir", str(tmp_path / "state"),
                      "--api-socket", str(tmp_path / "api.sock"), "--uapi-socket", str(tmp_path / "kubespan.sock"),
                      "--mac", "02:00:00:00:00:08", "--reconcile-interval", "1"],
                     tmp_path / "agent.log", env(NOTIFY_SOCKET=sock.name))
        try:
            _, agent_pid = sock.receive(proc, timeout=120)
            os.kill(agent_pid, signal.SIGTERM)
            proc.wait(60)
        finally:
            code = stop(proc)
    assert code == 0, (tmp_path / "agent.log").read_text()
    rows = [line.split() for line in summary.read_text().splitlines()[2:]]
    used = {row[-1] for row in rows if row and not row[-1].startswith("-") and row[-1] != "total"}
    assert {"ioctl", "sendto"} <= used, used  # TUNSETIFF, the notification
    assert sorted(used - allowed) == []
