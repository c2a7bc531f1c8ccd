"""deploy/k8s: every manifest valid against the Kubernetes API schemas (offline, with the
schemas bundled in the pinned kubernetes-validate), listed by the kustomization, and wired to
the service's real contract (probes, settings, commands, GPU requests, router policy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
#: The oldest Kubernetes minor still in upstream support when this was written; newer accept it.
KUBERNETES_VERSION = "1.33.0"


def _kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def _documents() -> list[dict[str, Any]]:
    docs = []
    for name in _kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    container: dict[str, Any] = spec["template"]["spec"]["containers"][0]
    return container


def test_kustomization_lists_every_manifest_and_nothing_else() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    namespaced = doc["kind"] != "Namespace"
    rendered = {**doc, "metadata": {**doc["metadata"]}}
    if namespaced:  # what kustomize's `namespace:` adds
        rendered["metadata"]["namespace"] = _kustomization()["namespace"]
    kubernetes_validate.validate(rendered, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    broken = _one("Deployment", "repic-api")
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_api_probes_hpa_and_pdb_target_the_api_pods() -> None:
    api = _one("Deployment", "repic-api")
    container = _container(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    labels = api["spec"]["template"]["metadata"]["labels"]
    hpa = _one("HorizontalPodAutoscaler", "repic-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "repic-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = _one("PodDisruptionBudget", "repic-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_settings_in_configmap_and_secret_are_accepted_by_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _one("ConfigMap", "repic-config")["data"]
    secret = _one("Secret", "repic-secrets")["stringData"]
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage.backend == "s3" and settings.storage.s3_bucket
    assert settings.vlm.base_url.startswith("http://vllm-router:")
    assert settings.storage.gc_interval_s == 0  # the CronJob sweeps, not every pod


def test_migration_job_and_sweep_run_the_service_cli() -> None:
    assert _container(_one("Job", "repic-migrate"))["args"] == ["repic", "db", "upgrade"]
    assert _container(_one("CronJob", "repic-gc"))["args"] == ["repic", "gc"]
    config = _one("ConfigMap", "repic-config")["data"]
    assert config["REPIC_RUN_MIGRATIONS"] == "0"  # pods never race the Job on the schema


def test_vllm_gets_a_gpu_and_the_router_hashes_on_the_user() -> None:
    vllm = _container(_one("Deployment", "vllm"))
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    router = _container(_one("Deployment", "vllm-router"))
    args = router["args"]
    assert args[args.index("--policy") + 1] == "consistent_hash"
    service = _one("Service", "vllm-router")
    assert service["spec"]["ports"][0]["port"] == 8000


def test_router_image_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", str(ROOT / "deploy/router/Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
