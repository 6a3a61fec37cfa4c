"""The rendered Kubernetes manifests agree with the gateway they deploy.

Schema validity is .ci/kubernetes.sh's job (kubernetes-validate, strict); these
tests check what a schema cannot: that probes ask the port and the health services
the gateway serves, that the shutdown timings add up, and that ports, user and
paths match the settings and the Dockerfile. They read the renderings CI made
(``IMAGEGATE_K8S_RENDERED``) or render with kubectl/kustomize when one is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from imagegate_server.gateway.services import LIVENESS, READINESS
from imagegate_server.metrics import Metrics, exported_names
from imagegate_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = {
    "base": "deploy/kubernetes/base",
    "redis": "deploy/kubernetes/overlays/redis",
    "persistent": "deploy/kubernetes/overlays/persistent",
    "store": "deploy/kubernetes/overlays/store",
}
MARGIN_S = 10  # closing clients and the emulator, exiting


def _render(name: str) -> str:
    rendered = os.environ.get("IMAGEGATE_K8S_RENDERED")
    if rendered:
        return (Path(rendered) / f"{name}.yaml").read_text()
    directory = ROOT / KUSTOMIZATIONS[name]
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(directory)]
    elif shutil.which("kustomize"):
        command = ["kustomize", "build", str(directory)]
    else:
        pytest.skip("neither kubectl nor kustomize is installed (.ci/kubernetes.sh brings one)")
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendering(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name: str = request.param
    return name, [doc for doc in yaml.safe_load_all(_render(name)) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one ``kind`` named ``name`` (a generated ConfigMap: ``name-<hash>``)."""

    def named(doc: dict[str, Any]) -> bool:
        actual: str = doc["metadata"]["name"]
        if kind == "ConfigMap":
            return actual.rpartition("-")[0] == name
        return actual == name

    found = [d for d in docs if d["kind"] == kind and named(d)]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def _gateway(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _one(docs, "Deployment", "imagegate")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _settings(docs: list[dict[str, Any]]) -> tuple[Settings, dict[str, str]]:
    """The ConfigMap's variables, read by the gateway's own Settings class."""
    data: dict[str, str] = _one(docs, "ConfigMap", "imagegate-settings")["data"]
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key == "PROMETHEUS_MULTIPROC_DIR":
            continue
        assert key.startswith("IMAGEGATE_"), key
        name = key.removeprefix("IMAGEGATE_").lower()
        assert name in Settings.model_fields, f"{key} is no setting of the gateway"
        fields[name] = value
    settings = Settings(_env_file=None, _secrets_dir=None, **fields)  # type: ignore[call-arg]
    return settings, data


def _port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port: int = ports[name]
    return port


def test_probes_ask_the_health_port_for_the_services_the_gateway_serves(
    rendering: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendering
    settings, _ = _settings(docs)
    container = _gateway(docs)
    assert settings.health_port == _port(container, "health")
    probes = {
        kind: container[kind]["grpc"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert {p["port"] for p in probes.values()} == {settings.health_port}
    assert probes["startupProbe"]["service"] == ""
    assert probes["readinessProbe"]["service"] == READINESS
    assert probes["livenessProbe"]["service"] == LIVENESS


def test_the_shutdown_timings_add_up(rendering: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendering
    settings, _ = _settings(docs)
    pod = _one(docs, "Deployment", "imagegate")["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    # A call that started just before SIGTERM may run as long as the upstream allows.
    assert settings.shutdown_grace_s >= settings.upstream_timeout_s
    # And the kubelet must not kill the pod before the drain is over.
    needed = pre_stop + settings.drain_notice_s + settings.shutdown_grace_s + MARGIN_S
    assert pod["terminationGracePeriodSeconds"] >= needed
    # The notice must outlast a readiness probe period, or routers never see it.
    readiness = pod["containers"][0]["readinessProbe"]
    assert (
        pre_stop + settings.drain_notice_s
        >= readiness["periodSeconds"] * readiness["failureThreshold"]
    )


def test_ports_user_and_paths_match_the_image(rendering: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendering
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT \[(.*)\]$", dockerfile, re.M)
    assert entrypoint is not None
    args = [a.strip().strip('"') for a in entrypoint.group(1).split(",")]
    image_port = int(args[args.index("--port") + 1])
    uid = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert uid is not None

    settings, data = _settings(docs)
    pod = _one(docs, "Deployment", "imagegate")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "command" not in container and "args" not in container  # the image's ENTRYPOINT
    assert _port(container, "grpc") == image_port
    assert f"EXPOSE {image_port}" in dockerfile
    assert settings.metrics_port == _port(container, "metrics")
    annotations = _one(docs, "Deployment", "imagegate")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsGroup"] == int(uid.group(2))

    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # A read-only root: the temporary directory (spooled uploads) and the metrics
    # directory are volumes, the metrics one in memory.
    assert "/tmp" in mounts
    multiproc = data["PROMETHEUS_MULTIPROC_DIR"]
    assert volumes[mounts[multiproc]["name"]]["emptyDir"]["medium"] == "Memory"
    # The clients file comes from a Secret mounted as a directory (no subPath), so
    # that the kubelet's updates reach the running pod.
    clients_file = Path(data["IMAGEGATE_CLIENTS_FILE"])
    clients_mount = mounts[str(clients_file.parent)]
    assert "subPath" not in clients_mount
    assert "secret" in volumes[clients_mount["name"]]
    key = next(e for e in container["env"] if e["name"] == "IMAGEGATE_OPENAI_API_KEY")
    assert "secretKeyRef" in key["valueFrom"]


def test_the_pod_runs_locked_down(rendering: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendering
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "readinessProbe" in container and "livenessProbe" in container


def test_services_and_policies_select_the_gateways_pods(
    rendering: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendering
    labels = _one(docs, "Deployment", "imagegate")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    service = _one(docs, "Service", "imagegate")
    headless = _one(docs, "Service", "imagegate-headless")
    assert headless["spec"]["clusterIP"] == "None"
    for svc in (service, headless):
        assert selects(svc["spec"]["selector"])
        grpc_port = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
        assert grpc_port["appProtocol"] == "kubernetes.io/h2c"
    assert selects(
        _one(docs, "PodDisruptionBudget", "imagegate")["spec"]["selector"]["matchLabels"]
    )
    policy = _one(docs, "NetworkPolicy", "imagegate")
    assert selects(policy["spec"]["podSelector"]["matchLabels"])
    if not any(d["kind"] == "HorizontalPodAutoscaler" for d in docs):
        return  # one replica on a volume of its own (overlays/persistent)
    hpa = _one(docs, "HorizontalPodAutoscaler", "imagegate")
    pods_metrics = [
        m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"
    ]
    assert pods_metrics and set(pods_metrics) <= exported_names(Metrics().registry)


def test_the_redis_overlay_points_the_gateway_at_its_redis() -> None:
    docs = [doc for doc in yaml.safe_load_all(_render("redis")) if doc]
    _, data = _settings(docs)
    url = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/\d+", data["IMAGEGATE_REDIS_URL"])
    assert url is not None
    service = _one(docs, "Service", url.group(1))
    assert int(url.group(2)) in {p["port"] for p in service["spec"]["ports"]}
    redis = _one(docs, "Deployment", "imagegate-redis")["spec"]["template"]
    assert all(
        redis["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items()
    )
    egress = _one(docs, "NetworkPolicy", "imagegate")["spec"]["egress"]
    assert any(int(url.group(2)) in {p["port"] for p in rule["ports"]} for rule in egress)


def test_the_data_directory_is_a_writable_volume_where_the_image_expects_it(
    rendering: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendering
    settings, _ = _settings(docs)
    image_env = re.search(r"IMAGEGATE_DATA_DIR=(\S+)", (ROOT / "Dockerfile").read_text())
    assert image_env is not None
    assert str(settings.data_dir) == image_env.group(1)
    deployment = _one(docs, "Deployment", "imagegate")
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    mount = mounts[str(settings.data_dir)]
    assert not mount.get("readOnly", False) and "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    if name != "persistent":
        # On disk (not memory: it would count against the memory limit), bounded.
        assert "medium" not in volume["emptyDir"] and volume["emptyDir"]["sizeLimit"]
        return
    # One replica that keeps its database on a claim: nothing may start a second pod
    # on the same file (no autoscaler; the old pod goes before the new one comes).
    claim = _one(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)


def test_the_link_port_stays_off_the_health_port_and_off_the_network(
    rendering: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendering
    settings, _ = _settings(docs)
    assert settings.store_http_port != settings.health_port
    if settings.store_backend == "local":
        # Each pod's own store: a link to a pod could not be followed from outside it.
        assert settings.store_http_host == "127.0.0.1"


def test_the_store_overlay_stores_in_its_bucket_with_credentials_from_a_secret() -> None:
    docs = [doc for doc in yaml.safe_load_all(_render("store")) if doc]
    settings, data = _settings(docs)
    assert settings.store_backend == "s3"
    assert settings.store_s3_bucket and settings.store_s3_endpoint
    # Shared by the replicas: what each client holds, and the sweep, live in Redis.
    assert data["IMAGEGATE_REDIS_URL"].startswith("redis://")
    assert settings.store_retention_s <= settings.store_max_retention_s
    assert settings.store_link_lifetime_s <= settings.store_retention_s
    env = {e["name"]: e for e in _gateway(docs)["env"]}
    for name in ("IMAGEGATE_STORE_S3_ACCESS_KEY_ID", "IMAGEGATE_STORE_S3_SECRET_ACCESS_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "imagegate-store"
    assert not any("SECRET" in key or "ACCESS_KEY" in key for key in data)
    port = urlsplit(settings.store_s3_endpoint).port
    egress = _one(docs, "NetworkPolicy", "imagegate")["spec"]["egress"]
    assert any(port in {p["port"] for p in rule["ports"]} for rule in egress)
