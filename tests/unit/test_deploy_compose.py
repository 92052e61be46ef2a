"""deploy/compose.yaml, checked without Docker: services, health, start order, settings, ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from voiceagent.cli import cli
from voiceagent.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert set(document) >= {"services", "volumes"}
    found: dict[str, dict[str, Any]] = document["services"]
    return found


def _voiceagent_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if str(s.get("image", "")).startswith("voiceagent-")}


def test_the_local_deployment_has_every_part(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"redis", "postgres", "migrate", "media", "worker-1", "worker-2"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["media"]["command"] == ["serve"]
    workers = [s for n, s in services.items() if n.startswith("worker-")]
    assert len(workers) == 2
    for worker in workers:
        assert worker["command"] == ["worker", "--engine", "cascade"]
        assert worker["build"]["args"]["VARIANT"] == "cpu", "compose runs CPU workers"


def test_depends_on_targets_exist_and_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert rule["condition"] in CONDITIONS
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck to wait for"
            if rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be a one-shot"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    media = services["media"]["depends_on"]
    assert media["migrate"]["condition"] == "service_completed_successfully"
    assert media["redis"]["condition"] == "service_healthy"


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "migrate":
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", name
        assert len(test) > 1, name


def test_environment_names_are_settings_and_values_valid(services: dict[str, dict[str, Any]]) -> None:
    known = {f"VOICEAGENT_{name.upper()}" for name in Settings.model_fields}
    checked = 0
    for name, service in _voiceagent_services(services).items():
        env = {k: str(v) for k, v in service["environment"].items() if k.startswith("VOICEAGENT_")}
        unknown = set(env) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which are no Settings fields"
        Settings.model_validate({k.removeprefix("VOICEAGENT_").lower(): v for k, v in env.items()})
        assert urlsplit(env["VOICEAGENT_DATABASE_URL"]).hostname == "postgres"
        assert urlsplit(env["VOICEAGENT_REDIS_URL"]).hostname == "redis"
        checked += 1
    assert checked == 4
    media_env = services["media"]["environment"]
    assert media_env["VOICEAGENT_ENGINE"] == "realtime"
    assert (
        media_env["VOICEAGENT_REALTIME_TOKEN"]
        == services["worker-1"]["environment"]["VOICEAGENT_WORKER_TOKEN"]
    )


def test_workers_register_addresses_other_containers_can_reach(services: dict[str, dict[str, Any]]) -> None:
    ids = set()
    for name in ("worker-1", "worker-2"):
        env = services[name]["environment"]
        url = urlsplit(env["VOICEAGENT_WORKER_URL"])
        assert (url.scheme, url.hostname, url.path) == ("ws", name, "/v1/realtime")
        assert url.port == Settings.model_fields["worker_port"].default
        ids.add(env["VOICEAGENT_WORKER_ID"])
        grace_s = int(services[name]["stop_grace_period"].removesuffix("s"))
        assert float(env["VOICEAGENT_WORKER_DRAIN_TIMEOUT_S"]) < grace_s, "drain must end before the kill"
    assert len(ids) == 2


def test_ports_and_healthcheck_urls_match_the_settings(services: dict[str, dict[str, Any]]) -> None:
    api_port = Settings.model_fields["api_bind_port"].default
    worker_port = Settings.model_fields["worker_port"].default
    assert services["media"]["ports"] == [f"127.0.0.1:{api_port}:{api_port}"]
    for name, port, path in (
        ("media", api_port, "/readyz"),
        ("worker-1", worker_port, "/readyz"),
        ("worker-2", worker_port, "/readyz"),
    ):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", probe) == [(str(port), path)], name
    for name in ("worker-1", "worker-2"):
        assert "ports" not in services[name], "workers are reached inside the compose network only"


def test_builds_use_the_repo_dockerfiles_and_commands_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _voiceagent_services(services).items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
        command, *args = service["command"]
        assert command in cli.commands, f"{name}: no `voiceagent {command}`"
        # Parses (and type-checks) the arguments the way the container will, without running them.
        with cli.commands[command].make_context(command, list(args)) as ctx:
            assert ctx.command.name == command
