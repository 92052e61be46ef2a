"""The container images in deploy/docker, checked without Docker: what they copy, run and probe."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from deploy_support import Served, served_paths

from voiceagent.cli import cli
from voiceagent.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
IMAGES = ("media", "worker")
# VOICEAGENT_* variables that are not Settings fields, with the module that reads each.
NON_SETTINGS_ENV = {
    "VOICEAGENT_CONFIG": "voiceagent/cli.py",
    "VOICEAGENT_ALEMBIC_INI": "voiceagent/store/migrate.py",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    return asyncio.run(served_paths(tmp_path_factory.mktemp("media")))


@pytest.fixture(scope="module")
def app_routes(served: Served) -> dict[str, set[str]]:
    return served[0]


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def final(self) -> Stage:
        return self.stages[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The last ENTRYPOINT/CMD of the final stage, which must be in exec (JSON) form."""
        found = self.final().all(keyword)
        assert found, f"no {keyword} in the final stage"
        args = found[-1].args
        assert args.startswith("["), f"{keyword} must use the exec form so signals reach voiceagent"
        return [str(a) for a in json.loads(args)]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Just enough of the Dockerfile grammar for these checks: continuations, ARG, FROM stages."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{path.name}: only ARG may come before the first FROM"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return Dockerfile(global_args, stages)


@pytest.fixture(scope="module", params=IMAGES)
def image(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    name = str(request.param)
    return name, parse_dockerfile(DOCKER / f"Dockerfile.{name}")


def _settings_env_names() -> set[str]:
    return {f"VOICEAGENT_{name.upper()}" for name in Settings.model_fields}


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def test_copy_sources_exist_and_are_let_into_the_build_context(image: tuple[str, Dockerfile]) -> None:
    name, dockerfile = image
    ignore = (DOCKER / f"Dockerfile.{name}.dockerignore").read_text(encoding="utf-8").splitlines()
    # The ignore file is an allow-list: "*" first, then "!path" for what the image needs.
    entries = [line for line in ignore if line and not line.startswith("#")]
    assert entries[0] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = 0
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            words = shlex.split(copy.args)
            if any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                source = source.rstrip("/")
                assert (ROOT / source).exists(), (
                    f"Dockerfile.{name} copies {source}, which is not in the repo"
                )
                assert source in allowed, f"{source} is copied but left out by Dockerfile.{name}.dockerignore"
                copied += 1
    assert copied >= 3
    assert "**/__pycache__" in ignore


def test_entrypoint_and_cmd_name_a_real_voiceagent_command(image: tuple[str, Dockerfile]) -> None:
    name, dockerfile = image
    entrypoint = dockerfile.exec_form("ENTRYPOINT")
    command = dockerfile.exec_form("CMD")
    assert entrypoint == ["voiceagent"]
    assert command == [{"media": "serve", "worker": "worker"}[name]]
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_healthcheck_probes_the_liveness_route(
    image: tuple[str, Dockerfile], app_routes: dict[str, set[str]]
) -> None:
    name, dockerfile = image
    checks = dockerfile.final().all("HEALTHCHECK")
    assert len(checks) == 1
    urls = re.findall(r"http://127\.0\.0\.1:%s(/\w+)", checks[0].args)
    assert urls == ["/healthz"]
    assert "/healthz" in app_routes[name]
    port_var = {"media": "VOICEAGENT_API_BIND_PORT", "worker": "VOICEAGENT_WORKER_PORT"}[name]
    assert port_var in checks[0].args
    exposed = dockerfile.final().all("EXPOSE")
    default_port = Settings.model_fields[port_var.removeprefix("VOICEAGENT_").lower()].default
    assert [e.args for e in exposed] == [str(default_port)]


def test_final_stage_runs_as_a_fixed_non_root_user(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    users = dockerfile.final().all("USER")
    assert users, "the final stage must switch away from root"
    user = users[-1].args.split(":")[0]
    assert user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    assert int(user) >= 1000


def test_base_images_are_pinned_and_stages_multi(image: tuple[str, Dockerfile]) -> None:
    name, dockerfile = image
    stage_names = {s.name for s in dockerfile.stages if s.name}
    assert len(dockerfile.stages) >= 2, "build tools stay out of the runtime stage"
    assert any(i.args.startswith("--from=") for i in dockerfile.final().all("COPY"))
    for stage in dockerfile.stages:
        base = _expand(stage.base, dockerfile.global_args)
        if "$" in base:  # FROM base-${VARIANT}: must name one of this file's stages for each variant
            for variant in ("cuda", "cpu"):
                assert base.replace("${VARIANT}", variant) in stage_names, (name, base)
            continue
        if base in stage_names:
            continue
        tag = base.partition(":")[2]
        assert re.search(r"\d+\.\d+", tag), f"{base} is not pinned to a version"


def test_env_names_are_real_settings(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    known = _settings_env_names()
    names = set()
    for stage in dockerfile.stages:
        for env in stage.all("ENV"):
            names.update(re.findall(r"\b(VOICEAGENT_\w+)=", env.args))
    assert names
    for env_name in names:
        if env_name in NON_SETTINGS_ENV:
            assert env_name in (ROOT / NON_SETTINGS_ENV[env_name]).read_text(encoding="utf-8")
        else:
            assert env_name in known, f"{env_name} is no Settings field"
    values = {}
    for env in dockerfile.final().all("ENV"):
        for key, value in re.findall(r"\b(VOICEAGENT_\w+)=(\S+)", env.args):
            if key not in NON_SETTINGS_ENV:
                values[key.removeprefix("VOICEAGENT_").lower()] = value
    Settings.model_validate(values)  # the image's defaults are valid settings


def test_torch_only_in_the_worker_and_pinned_like_the_e2e_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith("torch")]
    (torch_pin,) = [d for d in project["optional-dependencies"]["e2e"] if d.startswith("torch")]
    media = parse_dockerfile(DOCKER / "Dockerfile.media")
    assert media.final().base == media.stages[0].base  # the slim Python image, no CUDA
    media_runs = " ".join(r.args for s in media.stages for r in s.all("RUN"))
    assert "--index-url" not in media_runs
    assert "[e2e]" not in media_runs

    worker = parse_dockerfile(DOCKER / "Dockerfile.worker")
    assert worker.global_args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert "runtime" in worker.global_args["CUDA_IMAGE"]
    assert worker.global_args["VARIANT"] == "cuda"
    (build,) = [s for s in worker.stages if s.name == "build"]
    build_args = dict(a.args.partition("=")[::2] for a in build.all("ARG"))
    assert torch_pin == f"torch=={build_args['TORCH_VERSION']}"
    runs = [r.args for r in build.all("RUN")]
    torch_install = next(r for r in runs if '"torch==$TORCH_VERSION"' in r)
    assert "--index-url" in torch_install
    extras_install = next(r for r in runs if '".[e2e]"' in r)
    assert runs.index(torch_install) < runs.index(extras_install), "torch's build is chosen before the extra"


def _final_env(dockerfile: Dockerfile) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in dockerfile.final().all("ENV"):
        env.update(re.findall(r"\b(\w+)=(\S+)", instruction.args))
    return env


def test_migrations_run_from_where_the_media_image_puts_them(tmp_path: Path) -> None:
    dockerfile = parse_dockerfile(DOCKER / "Dockerfile.media")
    env = _final_env(dockerfile)
    # Lay the files out as the image's COPY lines do, away from the source checkout.
    for copy in dockerfile.final().all("COPY"):
        words = shlex.split(copy.args)
        if any(w.startswith("--from=") for w in words):
            continue
        source, target = words[-2], tmp_path / words[-1].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / source, target)
    ini = tmp_path / env["VOICEAGENT_ALEMBIC_INI"].lstrip("/")
    assert ini.is_file()
    database = tmp_path / "calls.db"
    result = CliRunner().invoke(
        cli,
        ["migrate"],
        env={
            "VOICEAGENT_ALEMBIC_INI": str(ini),
            "VOICEAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        },
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "calls"} <= tables


def test_worker_command_passes_its_healthcheck_and_drains_on_sigterm() -> None:
    dockerfile = parse_dockerfile(DOCKER / "Dockerfile.worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_")}
    image_env = _final_env(dockerfile)
    # The image's PATH with this checkout's venv standing in for /opt/venv.
    assert image_env.pop("PATH") == "/opt/venv/bin:$PATH"
    env.update(image_env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(VOICEAGENT_WORKER_HOST="127.0.0.1", VOICEAGENT_WORKER_PORT="0")  # no fixed ports in tests
    # The image's ENTRYPOINT + CMD, with the light engine instead of loading models.
    argv = [*dockerfile.exec_form("ENTRYPOINT"), *dockerfile.exec_form("CMD"), "--engine", "scripted"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        listening = json.loads(process.stdout.readline())
        assert listening["event"] == "listening"
        check = json.loads(dockerfile.final().all("HEALTHCHECK")[0].args.split(" CMD ", 1)[1])
        probe_env = {**env, "VOICEAGENT_WORKER_PORT": str(listening["port"])}
        probe = subprocess.run(check, env=probe_env, capture_output=True, timeout=30, check=False)
        assert probe.returncode == 0, probe.stderr
        process.send_signal(signal.SIGTERM)  # what STOPSIGNAL and the kubelet send
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"event": "drained", "active": 0}
