"""The Dockerfile and .dockerignore, read as text (no Docker engine here): one multi-stage image
whose entrypoint is the `convtrack` console script, running as a numeric non-root user that the
Kubernetes manifests share, with only espeak-ng and sox added from Debian."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "deploy" / "k8s" / "base"

Instruction = tuple[str, str]  # (KEYWORD, arguments)


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "dangling line continuation"
    return out


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    """Instructions grouped by stage (the ARGs before the first FROM are dropped)."""
    result: list[list[Instruction]] = []
    for keyword, args in instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def test_multi_stage_with_a_separate_runtime(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2
    build_name = _all(stages[0], "FROM")[0].split()[-1]
    final = stages[-1]
    copies = _all(final, "COPY")
    assert any(f"--from={build_name}" in c for c in copies), "runtime copies the built venv"
    assert not any(c.split()[0] in (".", "./") for c in copies), "no source tree in the runtime"
    assert any("pip install ." in run for run in _all(stages[0], "RUN"))


def test_entrypoint_is_the_convtrack_console_script(stages: list[list[Instruction]]) -> None:
    entry = json.loads(_all(stages[-1], "ENTRYPOINT")[-1])  # exec form: signals reach it
    assert entry == ["convtrack"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "convtrack" in scripts


def test_runs_as_the_numeric_non_root_user_of_the_manifests(
    stages: list[list[Instruction]],
) -> None:
    user = _all(stages[-1], "USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The app pods run with the same uid (their files, their fsGroup).
    for name in ("api.yaml", "ivr.yaml", "aggregator.yaml", "migrate.yaml"):
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            if doc and doc["kind"] in ("Deployment", "Job"):
                context = doc["spec"]["template"]["spec"]["securityContext"]
                assert context["runAsUser"] == int(uid), name
                assert context["runAsNonRoot"] is True


def test_runtime_adds_only_espeak_ng_and_sox(stages: list[list[Instruction]]) -> None:
    runs = " ".join(_all(stages[-1], "RUN"))
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    installed = runs.split("apt-get install", 1)[1].split("&&", 1)[0].split()
    assert {w for w in installed if not w.startswith("-")} == {"espeak-ng", "sox"}


def test_runtime_is_fit_for_a_read_only_root(stages: list[list[Instruction]]) -> None:
    env = " ".join(_all(stages[-1], "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env  # the /tmp emptyDir is the only writable place


def test_exposed_ports_are_the_services_ports(stages: list[list[Instruction]]) -> None:
    exposed = {int(p) for e in _all(stages[-1], "EXPOSE") for p in e.split()}
    config = yaml.safe_load((BASE / "config.yaml").read_text())["data"]
    listens = {k: v for k, v in config.items() if k.endswith("_LISTEN")}
    assert exposed == {int(v.rsplit(":", 1)[1]) for v in listens.values()}


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; "!" re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [pattern, pattern.replace("**/", "")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = ["pyproject.toml", project["project"]["readme"], *[f"{p}/x.py" for p in packages]]
    for path in needed:
        assert not _ignored(patterns, path), f"{path} must reach the build"
    for path in (".venv/bin/python", ".git/HEAD", "tests/test_x.py", ".stack/nats/x"):
        assert _ignored(patterns, path), f"{path} should not be in the build context"
