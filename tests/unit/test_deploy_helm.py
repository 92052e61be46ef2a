"""The Helm chart in deploy/helm/voiceagent: rendered by Helm's own engine (helm-python-sdk) and every
object checked against the Kubernetes schemas (kubernetes-validate, strict), then for what a call
center needs: GPUs, L20 nodes, host networking for RTP, probes on real routes, drain, autoscaling."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any, cast

import click
import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from deploy_support import Served, served_paths

from voiceagent.cli import cli
from voiceagent.config import Settings

helm = pytest.importorskip("helm_python", reason="helm-python-sdk renders the chart (a dev dependency)")

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "voiceagent"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas we have.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
DATABASE = {"secret": {"env": {"VOICEAGENT_DATABASE_URL": "postgresql+asyncpg://va:pw@db:5432/va"}}}

Objects = dict[tuple[str, str], dict[str, Any]]


def render(values: dict[str, Any] | None = None) -> Objects:
    merged = _merge(DATABASE, values or {})
    manifests = helm.Chart.load(CHART).render(merged, name="va", namespace="calls")
    objects: Objects = {}
    for path, text in manifests.items():
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _pod(objects: Objects, component: str) -> dict[str, Any]:
    spec: dict[str, Any] = objects[("Deployment", f"va-voiceagent-{component}")]["spec"]["template"]["spec"]
    return spec


def _container(objects: Objects, component: str) -> dict[str, Any]:
    (container,) = [c for c in _pod(objects, component)["containers"] if c["name"] == component]
    found: dict[str, Any] = container
    return found


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    return asyncio.run(served_paths(tmp_path_factory.mktemp("media")))


@pytest.fixture(scope="module")
def app_routes(served: Served) -> dict[str, set[str]]:
    return served[0]


@pytest.fixture(scope="module")
def objects() -> Objects:
    return render()


def test_chart_lints_clean() -> None:
    report = helm.lint(str(CHART), DATABASE, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_passes_strict_schema_validation(objects: Objects, kube_version: str) -> None:
    for key, obj in objects.items():
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{key} invalid for Kubernetes {kube_version}: {exc.message} at {list(exc.path)}")


def test_renders_the_whole_deployment(objects: Objects) -> None:
    assert sorted(objects) == [
        ("ConfigMap", "va-voiceagent"),
        ("Deployment", "va-voiceagent-media"),
        ("Deployment", "va-voiceagent-worker"),
        ("HorizontalPodAutoscaler", "va-voiceagent-worker"),
        ("PodDisruptionBudget", "va-voiceagent-media"),
        ("PodDisruptionBudget", "va-voiceagent-worker"),
        ("Secret", "va-voiceagent"),
        ("Service", "va-voiceagent-media"),
        ("Service", "va-voiceagent-worker"),
        ("ServiceAccount", "va-voiceagent"),
    ]


def test_workers_get_a_gpu_on_l20_nodes(objects: Objects) -> None:
    resources = _container(objects, "worker")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["nvidia.com/gpu"] == 1
    pod = _pod(objects, "worker")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L20"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    changed = render(
        {"worker": {"gpu": {"count": 2}, "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100"}}}
    )
    assert _container(changed, "worker")["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert _pod(changed, "worker")["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100"}


def test_media_pods_use_the_host_network_for_rtp(objects: Objects) -> None:
    pod = _pod(objects, "media")
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert "nvidia.com/gpu" not in str(_container(objects, "media")["resources"])
    off = _pod(render({"media": {"hostNetwork": False}}), "media")
    assert "hostNetwork" not in off
    assert "dnsPolicy" not in off


def test_probes_hit_real_routes_on_the_served_port(objects: Objects, app_routes: dict[str, set[str]]) -> None:
    expected = {
        "worker": {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"},
        "media": {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"},
    }
    port_env = {"worker": "VOICEAGENT_WORKER_PORT", "media": "VOICEAGENT_API_BIND_PORT"}
    for component, probes in expected.items():
        container = _container(objects, component)
        (port,) = container["ports"]
        assert port["name"] == "http"
        assert str(port["containerPort"]) == _env(container)[port_env[component]]
        for probe, path in probes.items():
            http = container[probe]["httpGet"]
            assert (http["path"], http["port"]) == (path, "http"), (component, probe)
            assert path in app_routes[component], f"{component} serves no {path}"


def test_workers_drain_within_the_grace_period(objects: Objects) -> None:
    container = _container(objects, "worker")
    drain_s = float(_env(container)["VOICEAGENT_WORKER_DRAIN_TIMEOUT_S"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace_s = _pod(objects, "worker")["terminationGracePeriodSeconds"]
    assert grace_s > drain_s + float(pre_stop[1]), "the kubelet must not kill a worker that is still draining"
    assert drain_s >= Settings().max_call_s, "a call as long as the longest allowed must fit in the drain"
    longer = render({"worker": {"drainTimeoutSeconds": 1800}})
    assert _pod(longer, "worker")["terminationGracePeriodSeconds"] > 1800
    media = _container(objects, "media")
    assert media["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert _pod(objects, "media")["terminationGracePeriodSeconds"] >= Settings().max_call_s
    strategy = objects[("Deployment", "va-voiceagent-worker")]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxSurge"] == 0, "a rollout must not need a spare GPU"


def test_workers_scale_on_live_sessions(objects: Objects, worker_metric_names: set[str]) -> None:
    hpa = objects[("HorizontalPodAutoscaler", "va-voiceagent-worker")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "va-voiceagent-worker",
    }
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] in worker_metric_names
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert float(metric["pods"]["target"]["averageValue"]) < float(
        _env(_container(objects, "worker"))["VOICEAGENT_WORKER_CAPACITY"]
    ), "scale out before workers are full"
    assert "replicas" not in objects[("Deployment", "va-voiceagent-worker")]["spec"], "the HPA owns replicas"
    fixed = render({"worker": {"autoscaling": {"enabled": False}, "replicas": 3}})
    assert ("HorizontalPodAutoscaler", "va-voiceagent-worker") not in fixed
    assert fixed[("Deployment", "va-voiceagent-worker")]["spec"]["replicas"] == 3


def test_selectors_match_the_pods_they_mean(objects: Objects) -> None:
    for component in ("media", "worker"):
        deployment = objects[("Deployment", f"va-voiceagent-{component}")]["spec"]
        labels = deployment["template"]["metadata"]["labels"]
        selector = deployment["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert selector["app.kubernetes.io/component"] == component
        assert objects[("Service", f"va-voiceagent-{component}")]["spec"]["selector"] == selector
        assert objects[("PodDisruptionBudget", f"va-voiceagent-{component}")]["spec"]["selector"] == {
            "matchLabels": selector
        }


def test_settings_reach_every_pod_under_real_names(objects: Objects) -> None:
    known = {f"VOICEAGENT_{name.upper()}" for name in Settings.model_fields}
    config = objects[("ConfigMap", "va-voiceagent")]["data"]
    secret = objects[("Secret", "va-voiceagent")]["stringData"]
    names = set(config) | set(secret)
    for component in ("media", "worker"):
        container = _container(objects, component)
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert refs == ["va-voiceagent", "va-voiceagent"]
        names |= {n for n in _env(container) if n.startswith("VOICEAGENT_")}
        values = {**config, **secret, **_env(container)}
        Settings.model_validate(
            {k.removeprefix("VOICEAGENT_").lower(): v for k, v in values.items() if k in known}
        )
    assert names - known == set(), f"not Settings fields: {sorted(names - known)}"
    worker_env = _env(_container(objects, "worker"))
    assert worker_env["VOICEAGENT_WORKER_URL"] == "ws://$(POD_IP):8090/v1/realtime"
    assert worker_env["VOICEAGENT_WORKER_ID"] == "$(POD_NAME)"
    assert _env(_container(objects, "media"))["VOICEAGENT_ENGINE"] == "realtime"
    worker_args = _container(objects, "worker")["args"]
    assert worker_args == ["worker", "--engine", "e2e"]
    with cli.commands["worker"].make_context("worker", worker_args[1:]) as ctx:
        assert ctx.params["engine_name"] == "e2e"
    assert _container(objects, "media")["args"] == ["serve"]
    init = _pod(objects, "media")["initContainers"]
    assert [(c["name"], c["args"]) for c in init] == [("migrate", ["migrate"])]


def test_a_database_url_is_required_and_an_existing_secret_can_hold_it() -> None:
    with pytest.raises(helm.HelmRenderError, match="VOICEAGENT_DATABASE_URL"):
        helm.Chart.load(CHART).render({}, name="va", namespace="calls")
    objects = render({"secret": {"env": None}, "existingSecret": "voiceagent-prod"})
    assert ("Secret", "va-voiceagent") not in objects
    refs = _container(objects, "worker")["envFrom"]
    assert {"secretRef": {"name": "voiceagent-prod"}} in refs


def test_pods_run_as_the_images_non_root_user(objects: Objects) -> None:
    for component in ("media", "worker"):
        pod = _pod(objects, component)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        dockerfile = CHART.parents[1] / "docker" / f"Dockerfile.{component}"
        assert "\nUSER 10001:10001\n" in dockerfile.read_text(encoding="utf-8"), "the image's uid"
        assert pod["automountServiceAccountToken"] is False
        container = _container(objects, component)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/var/lib/voiceagent", "/tmp"} <= mounts, "writable paths on a read-only root"


@pytest.fixture(scope="module")
def worker_metric_names(served: Served) -> set[str]:
    return {line.split()[2] for line in served[1].splitlines() if line.startswith("# TYPE ")}


def test_worker_readiness_fails_while_draining(served: Served) -> None:
    # What the readiness probe relies on to take a draining worker out of the Service.
    assert served[2] is True


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"worker": {"replica": 3}}, "replica"),
        ({"worker": {"gpu": {"count": "one"}}}, "/worker/gpu/count"),
        ({"config": {"REDIS_URL": "redis://r"}}, "REDIS_URL"),
        ({"media": {"port": 70000}}, "/media/port"),
    ],
)
def test_values_schema_rejects_typos_and_bad_types(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


def test_values_schema_knows_the_worker_engines() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    engines = schema["properties"]["worker"]["properties"]["engine"]["enum"]
    (option,) = [p for p in cli.commands["worker"].params if p.name == "engine_name"]
    assert isinstance(option.type, click.Choice)
    assert engines == list(option.type.choices)


class _StatsOnly:
    """Stands in for a SipMediaService: the control app's /health only asks for stats()."""

    def stats(self) -> dict[str, int]:
        return {"live_calls": 0, "max_calls": 3}


async def _sip_control_status(path: str) -> int:
    from voiceagent.bridges.sip.control import control_app

    app = control_app(cast(Any, _StatsOnly()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sip") as client:
        return (await client.get(path)).status_code


def test_sip_media_processes_are_off_by_default(objects: Objects) -> None:
    assert [c["name"] for c in _pod(objects, "media")["containers"]] == ["media"]


@pytest.mark.parametrize("endpoints", [1, 2])
def test_sip_media_processes_share_the_node_without_clashing(endpoints: int) -> None:
    sip = {
        "enabled": True,
        "processes": 3,
        "endpointsPerProcess": endpoints,
        "allow": ["10.0.0.0/8"],
        "publicHost": "203.0.113.7",
    }
    objects = render({"media": {"sip": sip}})
    for key, obj in objects.items():
        assert kubernetes_validate.validate(obj, KUBE_VERSIONS[-1], strict=True), key
    pod = _pod(objects, "media")
    containers = {c["name"]: c for c in pod["containers"]}
    assert sorted(containers) == ["media", "sip-media-0", "sip-media-1", "sip-media-2"]
    ports = [(p["containerPort"], p["protocol"]) for c in containers.values() for p in c["ports"]]
    assert len(ports) == len(set(ports)), "host-network ports must not clash inside the pod"
    names = [p["name"] for c in containers.values() for p in c["ports"]]
    assert len(names) == len(set(names))
    known = {f"VOICEAGENT_{name.upper()}" for name in Settings.model_fields}
    rtp_ports: list[range] = []
    command = cli.commands["sip-media"]
    for i in range(3):
        container = containers[f"sip-media-{i}"]
        args = container["args"]
        assert args[0] == "sip-media"
        with command.make_context("sip-media", args[1:]) as ctx:
            params = ctx.params
        assert params["sip_port"] == 5070 + i * endpoints
        assert params["endpoints"] == endpoints
        sip_ports = sorted(p["containerPort"] for p in container["ports"] if p["protocol"] == "UDP")
        assert sip_ports == [params["sip_port"] + j for j in range(endpoints)]
        assert params["allow"] == ("10.0.0.0/8",)
        assert params["max_calls"] == 3
        first, last = (int(p) for p in params["rtp_port_range"].split("-"))
        rtp_ports.append(range(first, last + 1))
        probe = container["livenessProbe"]["exec"]["command"]
        assert f"http://127.0.0.1:{params['control_port']}/health" in probe[2]
        env = _env(container)
        assert env["VOICEAGENT_SIP_BIND_HOST"] == "$(HOST_IP)"
        assert env["VOICEAGENT_SIP_PUBLIC_HOST"] == "203.0.113.7"
        assert {n for n in env if n.startswith("VOICEAGENT_")} <= known
        (host_ip,) = [e for e in container["env"] if e["name"] == "HOST_IP"]
        assert host_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert all(len(r) == 200 for r in rtp_ports)
    assert all(a[-1] < b[0] for a, b in itertools.pairwise(rtp_ports)), "RTP ranges overlap"
    assert asyncio.run(_sip_control_status("/health")) == 200
    assert asyncio.run(_sip_control_status("/no-such-path")) == 404
