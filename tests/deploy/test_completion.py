"""Shell completion (``deploy/completion``): sourced in a real bash, completion functions called
the way bash calls them (``COMP_WORDS``/``COMP_CWORD``), the answers read from ``COMPREPLY``.

``kubespan.bash`` is generated from the CLI's argparse parsers: it must be the generator's
current output, and every option of every command must be offered.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kubespan import cli
from kubespan.discovery import command as service
from kubespan.resources import RESOURCE_TYPES

REPO = Path(__file__).resolve().parents[2]
COMPLETION = REPO / "deploy" / "completion"


def complete(script: str, function: str, words: list[str], cwd: Path | None = None) -> list[str]:
    """What ``function`` puts in COMPREPLY for the command line ``words`` (the last one is being typed)."""
    bash = shutil.which("bash")
    assert bash
    code = (f"source {shlex.quote(str(COMPLETION / script))}; COMP_WORDS=({' '.join(map(shlex.quote, words))}); "
            f"COMP_CWORD={len(words) - 1}; {function}; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    res = subprocess.run([bash, "--norc", "--noprofile", "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=cwd)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [line for line in res.stdout.splitlines() if line]


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("completion_generate", COMPLETION / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- wgpy ----------------------------------------------------------------------------------------


def test_wgpy_completes_its_wireguard_go_options_only() -> None:
    assert complete("wgpy.bash", "_wgpy", ["wgpy", "-"]) == ["-f", "--foreground", "--version"]
    assert complete("wgpy.bash", "_wgpy", ["wgpy", "--f"]) == ["--foreground"]
    assert complete("wgpy.bash", "_wgpy", ["wgpy", "-f", ""]) == []  # a new interface name
    assert complete("wgpy.bash", "_wgpy", ["wgpy", "wg0", "-"]) == []  # nothing after the name


# --- kubespan ------------------------------------------------------------------------------------


def test_kubespan_completion_is_the_generators_current_output() -> None:
    render = getattr(_generator(), "render")
    assert (COMPLETION / "kubespan.bash").read_text() == render(), \
        "deploy/completion/kubespan.bash is stale: run python deploy/completion/generate.py"


def _kubespan(*words: str, cwd: Path | None = None) -> list[str]:
    return complete("kubespan.bash", "_kubespan", ["kubespan", *words], cwd)


def test_kubespan_commands_resources_and_choices() -> None:
    assert _kubespan("") == ["gen", "agent", "get", "leave", "discovery-service"]
    assert _kubespan("g") == ["gen", "get"]
    assert _kubespan("gen", "") == ["config"]
    assert _kubespan("get", "") == [w for t in RESOURCE_TYPES for w in (t.name.lower(), *t.extra_aliases)]
    assert _kubespan("get", "peer") == ["peerspecs", "peerspec", "peerstatuses", "peerstatus"]
    assert _kubespan("get", "members", "-o", "") == ["table", "yaml", "json", "jsonpath="]
    assert _kubespan("agent", "--log-level", "w") == ["warning"]
    assert _kubespan("agent", "--reconcile-interval", "") == []
    # an option's value is not mistaken for a command: "get" here is a file name
    assert "--with-kubespan" in _kubespan("gen", "config", "-o", "get", "--")


def test_kubespan_files_after_file_options_directories_after_dir(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text("")
    (tmp_path / "state").mkdir()
    assert _kubespan("agent", "--config", "c", cwd=tmp_path) == ["cluster.yaml"]
    assert _kubespan("agent", "--state-dir", "", cwd=tmp_path) == ["state"]
    assert _kubespan("discovery-service", "--tls-cert", "cl", cwd=tmp_path) == ["cluster.yaml"]


def _paths() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    out = {"": parser}
    stack = [("", parser)]
    while stack:
        path, current = stack.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    full = f"{path} {name}".strip()
                    out[full] = sub
                    stack.append((full, sub))
    out["discovery-service"] = service.build_parser()
    return out


@pytest.mark.parametrize("path", sorted(_paths()), ids=lambda p: p or "top")
def test_every_option_of_every_command_is_offered(path: str) -> None:
    parser = _paths()[path]
    wanted = [opt for action in parser._actions for opt in action.option_strings]
    assert wanted and sorted(_kubespan(*path.split(), "-")) == sorted(wanted)
