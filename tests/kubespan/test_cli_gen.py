"""``kubespan gen config`` round trips through load_config; argument handling."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from kubespan.cli import main
from kubespan.config import DiscoveryEndpoint, gen_config_documents, load_config, parse_config, render_gen_config

REPO = Path(__file__).resolve().parents[2]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_default_is_the_1_14_multidoc_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["gen", "config", "--with-kubespan"], capsys)
    assert code == 0 and err == ""
    docs = list(yaml.safe_load_all(out))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("v1alpha1", "KubeSpanConfig"), ("v1alpha1", "DiscoveryServiceConfig"), ("v1alpha1", "DiscoveryIdentityConfig"),
    ]
    assert docs[1]["name"] == "default"
    cfg = parse_config(out)
    assert cfg.kubespan.enabled
    assert cfg.discovery_endpoints == (
        DiscoveryEndpoint("default", "https://discovery.talos.dev/", "discovery.talos.dev", 443, False),
    )
    assert cfg.identity is not None
    assert len(base64.b64decode(cfg.identity.cluster_id, validate=True)) == 32
    assert len(cfg.identity.cluster_secret) == 32
    assert cfg.identity.cluster_secret_b64 == docs[2]["clusterSecret"]


def test_legacy_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["gen", "config", "--with-kubespan", "--legacy"], capsys)
    assert code == 0
    (doc,) = list(yaml.safe_load_all(out))
    assert doc["version"] == "v1alpha1"
    assert doc["machine"]["network"]["kubespan"] == {"enabled": True}
    assert doc["cluster"]["discovery"] == {
        "enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}},
    }
    cfg = parse_config(out)
    assert cfg.kubespan.enabled
    assert cfg.discovery_endpoints[0].name == "legacy" and cfg.discovery_endpoints[0].port == 443


@pytest.mark.parametrize("legacy", [False, True])
def test_custom_endpoint(legacy: bool, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gen", "config", "--with-kubespan", "--discovery-endpoint", "http://127.0.0.1:3000"]
    code, out, _ = run_main(argv + (["--legacy"] if legacy else []), capsys)
    assert code == 0
    (endpoint,) = parse_config(out).discovery_endpoints
    assert (endpoint.host, endpoint.port, endpoint.insecure) == ("127.0.0.1", 3000, True)


def test_every_run_draws_a_fresh_identity(capsys: pytest.CaptureFixture[str]) -> None:
    outs = [run_main(["gen", "config", "--with-kubespan"], capsys)[1] for _ in range(2)]
    ids = [parse_config(o).identity for o in outs]
    assert ids[0] is not None and ids[1] is not None
    assert ids[0].cluster_id != ids[1].cluster_id
    assert ids[0].cluster_secret != ids[1].cluster_secret


def test_injected_rng_is_used_for_id_and_secret() -> None:
    draws = iter([b"\x01" * 32, b"\x02" * 32])
    docs = gen_config_documents("https://discovery.talos.dev/", legacy=False, rng=lambda n: next(draws))
    assert docs[2]["clusterID"] == base64.b64encode(b"\x01" * 32).decode()
    assert docs[2]["clusterSecret"] == base64.b64encode(b"\x02" * 32).decode()
    text = render_gen_config("grpc://d.example:6443", legacy=True, rng=lambda n: b"\x03" * n)
    assert parse_config(text).discovery_endpoints[0].address == "d.example:6443"


def test_output_file_is_0600_and_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "config.yaml"
    target.parent.mkdir()
    old = os.umask(0)
    try:
        code, out, err = run_main(["gen", "config", "--with-kubespan", "-o", str(target)], capsys)
    finally:
        os.umask(old)
    assert (code, out, err) == (0, "", "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(target.parent)) == ["config.yaml"]
    assert load_config(str(target)).kubespan.enabled


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("keep me")
    code, out, err = run_main(["gen", "config", "--with-kubespan", "-o", str(target)], capsys)
    assert code == 1 and err.startswith("error: ") and "already exists" in err and "Traceback" not in err
    assert target.read_text() == "keep me"
    code, _, _ = run_main(["gen", "config", "--with-kubespan", "-o", str(target), "--force"], capsys)
    assert code == 0 and load_config(str(target)).kubespan.enabled


def test_unwritable_output_is_error_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_main(["gen", "config", "--with-kubespan", "-o", str(blocker / "sub" / "c.yaml")], capsys)
    assert code == 1 and err.startswith("error: ")


def test_output_into_a_missing_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "config.yaml"
    code, out, err = run_main(["gen", "config", "--with-kubespan", "-o", str(target)], capsys)
    assert code == 1 and out == ""
    assert err == f"error: {target}: the directory {target.parent} does not exist\n"
    assert list(tmp_path.iterdir()) == []


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("flag", "source"), [
    ("--from-config", "legacy-controlplane.yaml"),  # cluster.id / cluster.secret of the v1alpha1 document
    ("--from-config", "multidoc-1.14.yaml"),  # a DiscoveryIdentityConfig document
    ("--with-secrets", "talos-secrets.yaml"),  # a talosctl gen secrets bundle
])
@pytest.mark.parametrize("legacy", [False, True])
def test_joining_an_existing_cluster_keeps_its_id_and_secret(flag: str, source: str, legacy: bool,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    docs = list(yaml.safe_load_all((DATA / source).read_text()))
    if "DiscoveryIdentityConfig" in [d.get("kind") for d in docs]:
        (ident,) = [d for d in docs if d.get("kind") == "DiscoveryIdentityConfig"]
        want = (ident["clusterID"], ident["clusterSecret"])
    else:
        want = (docs[0]["cluster"]["id"], docs[0]["cluster"]["secret"])
    argv = ["gen", "config", "--with-kubespan", flag, str(DATA / source)] + (["--legacy"] if legacy else [])
    code, out, err = run_main(argv, capsys)
    assert code == 0 and err == ""
    identity = parse_config(out).identity
    assert identity is not None and (identity.cluster_id, identity.cluster_secret_b64) == want
    assert want[1] not in err


@pytest.mark.parametrize(("text", "message"), [
    ("version: v1alpha1\nmachine: {}\n", "has no cluster identity"),
    ("cluster: {id: x}\n", "cluster.secret: is missing (document 1)"),
    ("cluster: {id: x, secret: c2hvcnQ=}\n", "cluster.secret: <redacted> must decode to exactly 32 bytes"),
    ("cluster: {id: x, secret: %s}\n---\napiVersion: v1alpha1\nkind: DiscoveryIdentityConfig\nclusterID: y\n"
     "clusterSecret: %s\n" % ("A" * 43 + "=", "B" * 43 + "="), "has two different cluster identities"),
    ("[unclosed\n", "invalid YAML"),
])
def test_a_source_without_one_good_identity_is_an_error(text: str, message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "existing.yaml"
    source.write_text(text)
    target = tmp_path / "out.yaml"
    code, out, err = run_main(["gen", "config", "--with-kubespan", "--from-config", str(source), "-o", str(target)],
                              capsys)
    assert code == 1 and out == "" and err.startswith(f"error: {source}") and message in err, err
    assert len(err.splitlines()) == 1 and not target.exists()
    assert "A" * 43 not in err and "c2hvcnQ" not in err


def test_a_missing_source_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["gen", "config", "--with-kubespan", "--with-secrets", str(tmp_path / "nope")], capsys)
    assert code == 1 and out == "" and "cannot read" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["gen", "config", "--with-kubespan", "--from-config", "a.yaml", "--with-secrets", "b.yaml"],
        ["bogus"],
        ["gen"],
        ["gen", "secrets"],
        ["gen", "config"],
        ["gen", "config", "--with-kubespan", "--bogus"],
        ["gen", "config", "--with-kubespan", "--discovery-endpoint", "ftp://x/"],
        ["gen", "config", "--with-kubespan", "--discovery-endpoint", "discovery.talos.dev:443"],
        ["gen", "config", "--with-kubespan", "--legacy", "--discovery-endpoint", "https://d.example/path"],
        ["agent"],
        ["get"],
        ["get", "members", "-o", "xml"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == "" and "usage:" in err and "Traceback" not in err


def test_discovery_service_gets_all_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    module = types.ModuleType("kubespan.discovery.service")
    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kubespan.discovery.service", module)
    assert main(["discovery-service", "--listen", "127.0.0.1:3000", "-h"]) == 7
    assert seen == [["--listen", "127.0.0.1:3000", "-h"]]


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "kubespan", "gen", "config", "--with-kubespan", "-o", str(target)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_config(str(target)).kubespan.enabled
    proc = subprocess.run([sys.executable, "-m", "kubespan", "gen", "config"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr
