"""deploy/k8s agrees with the Kubernetes API and with the code it starts.

Every overlay is rendered (tests/kustomize.py; checked against `kubectl kustomize` where
kubectl exists) and every manifest validated against the Kubernetes schemas that the
kubernetes-validate package ships (offline). Then each command, module, queue, setting,
probe path, port and name that the manifests use is checked against the code, as
tests/test_deploy_files.py does for docker-compose.yml.
"""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.conf import settings
from django.utils.module_loading import import_string
from kustomize import render
from test_deploy_files import ENV_EXAMPLE_VARS, SETTINGS_VARS, option, routed_queues

from searches import health

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["overlays/external", "overlays/in-cluster"]
KUBERNETES_VERSION = "1.30.0"
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# Read by the code outside settings.py (the heartbeat thread) or by the images of the services.
OTHER_VARS = {"HEARTBEAT_SECONDS"}
THIRD_PARTY_IMAGES = ("postgres:", "redis:", "minio/minio:", "busybox:")


@pytest.fixture(scope="module", params=["base"] + OVERLAYS)
def rendered(request):
    return request.param, render(K8S / request.param)


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield doc["metadata"]["name"], doc["spec"]["template"]


def app_containers(docs):
    """(workload, container, pod spec) of every container running the NASWeb image."""
    for name, template in pod_specs(docs):
        for container in template["spec"]["containers"]:
            if container["image"].startswith("nasweb:"):
                yield name, container, template["spec"]


def config_values(docs) -> dict:
    values = dict(next(iter(by_kind(docs, "ConfigMap").values()))["data"])
    values.update(next(iter(by_kind(docs, "Secret").values()))["stringData"])
    return values


def test_every_manifest_is_valid_against_the_kubernetes_schemas(rendered):
    name, docs = rendered
    assert docs, f"{name} renders nothing"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises with the field at fault


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed; the Python renderer is used alone")
@pytest.mark.parametrize("folder", ["base"] + OVERLAYS)
def test_the_renderer_agrees_with_kubectl_kustomize(folder):
    out = subprocess.run(["kubectl", "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

    def key(doc):
        return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]

    theirs = {key(d): d for d in yaml.safe_load_all(out.stdout) if d}
    assert {key(d): d for d in render(K8S / folder)} == theirs


def test_the_base_has_every_part_the_issue_lists():
    docs = render(K8S / "base")
    deployments = by_kind(docs, "Deployment")
    assert {"nasweb-web", "nasweb-worker-control", "nasweb-worker-gpu", "nasweb-beat"} <= set(deployments)
    assert deployments["nasweb-web"]["spec"]["replicas"] >= 2
    assert deployments["nasweb-beat"]["spec"]["replicas"] == 1
    assert deployments["nasweb-beat"]["spec"]["strategy"]["type"] == "Recreate"  # never two schedulers
    assert "nasweb-migrate" in by_kind(docs, "Job")
    assert by_kind(docs, "Service") and by_kind(docs, "Ingress") and by_kind(docs, "PodDisruptionBudget")
    assert by_kind(docs, "ConfigMap") and by_kind(docs, "Secret")
    gpu = deployments["nasweb-worker-gpu"]["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_celery_commands_name_the_app_routed_queues_and_one_beat(rendered):
    name, docs = rendered
    consumed, beats = set(), []
    for workload, container, _ in app_containers(docs):
        command = container.get("command", [])
        if command[:1] != ["celery"]:
            continue
        app = option(command, "-A", "--app")
        assert isinstance(find_app(app), Celery), f"{workload}: -A {app} is not a Celery app"
        if "beat" in command:
            beats.append(workload)
            continue
        assert "worker" in command
        queues = set(option(command, "-Q", "--queues").split(","))
        assert queues <= routed_queues(), f"{workload}: {queues - routed_queues()} is routed nowhere"
        consumed |= queues
        if "gpu" in queues:
            assert "--pool=solo" in command and "--concurrency=1" in command
    assert routed_queues() <= consumed, f"{name}: no worker consumes {routed_queues() - consumed}"
    assert len(beats) == 1, f"{name}: CELERY_BEAT_SCHEDULE needs exactly one beat, found {beats}"


def test_the_cpu_only_overlay_asks_for_no_gpu():
    docs = render(K8S / "overlays" / "in-cluster")
    for workload, container, _ in app_containers(docs):
        assert "nvidia.com/gpu" not in container.get("resources", {}).get("limits", {}), workload
        assert "nvidia.com/gpu" not in container.get("resources", {}).get("requests", {}), workload


def test_web_serves_the_asgi_app_on_the_probed_port_and_paths(rendered):
    _, docs = rendered
    web = by_kind(docs, "Deployment")["nasweb-web"]["spec"]["template"]["spec"]["containers"][0]
    command = web["command"]
    assert command[0] == "daphne"
    module, attr = next(a for a in command if re.fullmatch(r"[\w.]+:[\w.]+", a)).split(":")
    assert getattr(importlib.import_module(module), attr) is import_string(settings.ASGI_APPLICATION)
    port = int(option(command, "-p", "--port"))
    named = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert port in named.values()
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = web[probe]["httpGet"]
        assert get["path"] == path and path in health.ROUTES
        assert named.get(get["port"], get["port"]) == port


def test_the_migrate_job_runs_manage_py_migrate(rendered):
    _, docs = rendered
    job = by_kind(docs, "Job")["nasweb-migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"][:3] == ["python", "manage.py", "migrate"]
    assert (ROOT / "manage.py").is_file()


def test_services_ingress_and_budgets_select_real_pods_and_ports(rendered):
    name, docs = rendered
    pods = {n: t for n, t in pod_specs(docs)}
    services = by_kind(docs, "Service")
    for svc_name, svc in services.items():
        selected = [t for t in pods.values()
                    if svc["spec"]["selector"].items() <= t["metadata"]["labels"].items()]
        assert selected, f"{name}: Service {svc_name} selects no pods"
        ports = {p["name"] for t in selected for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{svc_name}: no container port {port['targetPort']}"
    for ingress in by_kind(docs, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
    deployments = by_kind(docs, "Deployment")
    for pdb_name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        labels = pdb["spec"]["selector"]["matchLabels"]
        selected = [d for d in deployments.values()
                    if labels.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, f"{name}: PodDisruptionBudget {pdb_name} selects no pods"
        # A budget that no drain can ever meet blocks node maintenance for good.
        replicas = sum(d["spec"].get("replicas", 1) for d in selected)
        assert pdb["spec"].get("minAvailable", 0) < replicas, f"{name}: {pdb_name} allows no disruption"


def test_every_setting_named_is_read_by_the_code_and_listed_in_env_example(rendered):
    name, docs = rendered
    values = config_values(docs)
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STORAGE_URL"} <= set(values)
    assert set(values) <= SETTINGS_VARS | OTHER_VARS, f"{name}: nothing reads {set(values) - SETTINGS_VARS}"
    assert set(values) <= ENV_EXAMPLE_VARS | OTHER_VARS, f"{name}: .env.example lacks {set(values) - ENV_EXAMPLE_VARS}"
    configmaps, secrets = set(by_kind(docs, "ConfigMap")), set(by_kind(docs, "Secret"))
    for workload, container, _ in app_containers(docs):
        refs = container.get("envFrom", [])
        assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= configmaps, workload
        assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= secrets, workload
        assert {e["name"] for e in container.get("env", [])} <= SETTINGS_VARS | OTHER_VARS, workload
    from nasweb.settings import storage_backend
    assert storage_backend(values["STORAGE_URL"], "/tmp")["BACKEND"] == "storages.backends.s3.S3Storage"


def test_the_in_cluster_overlay_points_every_url_at_its_own_services():
    docs = render(K8S / "overlays" / "in-cluster")
    values = config_values(docs)
    services = by_kind(docs, "Service")
    statefulsets = by_kind(docs, "StatefulSet")
    assert {"postgres", "redis", "minio"} <= set(statefulsets)
    endpoint = dict(p.split("=", 1) for p in urlsplit(values["STORAGE_URL"]).query.split("&"))["endpoint"]
    for url in (values["DATABASE_URL"], values["REDIS_URL"], endpoint):
        parts = urlsplit(url)
        assert parts.hostname in services, f"{url}: no Service {parts.hostname}"
        assert parts.port in {p["port"] for p in services[parts.hostname]["spec"]["ports"]}, url
    pg_env = {e["name"]: e.get("value") for e in
              statefulsets["postgres"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    db = urlsplit(values["DATABASE_URL"])
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])


def test_images_are_the_project_image_or_pinned_services(rendered):
    _, docs = rendered
    for workload, template in pod_specs(docs):
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            image = container["image"]
            assert image.startswith("nasweb:") or image.startswith(THIRD_PARTY_IMAGES), (workload, image)
            assert not image.endswith(":latest") or image.startswith("nasweb:"), (workload, image)
