"""docs/deploy-aks.md stays in step with the manifests, and the manifests with the settings the app reads."""

from __future__ import annotations

import re

from tests.deploy.conftest import OVERLAYS, REPO_ROOT, containers, rendered

DOC = (REPO_ROOT / "docs" / "deploy-aks.md").read_text()
# Read by libraries rather than by controlplane/settings.py (MLflow's Databricks auth).
LIBRARY_SETTINGS = {"DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"}


def _config_keys() -> set[str]:
    return {
        key for overlay in OVERLAYS for obj in rendered(overlay) if obj["kind"] == "ConfigMap" for key in obj["data"]
    }


def test_every_configmap_key_is_read_by_the_app_and_documented() -> None:
    sources = (REPO_ROOT / "controlplane" / "settings.py").read_text() + (
        REPO_ROOT / "deploy" / "entrypoint.sh"
    ).read_text()
    for key in _config_keys():
        assert key in LIBRARY_SETTINGS or re.search(rf"\b{key}\b", sources), f"{key} is read by nothing"
        assert f"`{key}`" in DOC, f"{key} is not in docs/deploy-aks.md"


def test_the_secret_and_every_name_the_docs_use_exist_in_the_manifests() -> None:
    for key in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        assert f"--from-literal={key}=" in DOC
    objects = [obj for overlay in OVERLAYS for obj in rendered(overlay)]
    referenced = {
        ref["secretRef"]["name"]
        for obj in objects
        for c in containers(obj)
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    }
    referenced |= {
        env["valueFrom"]["secretKeyRef"]["name"]
        for obj in objects
        for c in containers(obj)
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    referenced |= {
        tls["secretName"] for obj in objects if obj["kind"] == "Ingress" for tls in obj["spec"].get("tls", [])
    }
    for secret in referenced:
        assert f"secret generic {secret}" in DOC or f"secret tls {secret}" in DOC, f"how to create {secret}?"
    names = {obj["metadata"]["name"] for obj in objects}
    for name in re.findall(r"(?:deploy|job)/(modelplane-[a-z]+)", DOC):
        assert name in names, name
    # One federated credential per service account of the manifests.
    accounts = sorted(obj["metadata"]["name"] for obj in objects if obj["kind"] == "ServiceAccount")
    assert f"for sa in {' '.join(dict.fromkeys(accounts))}; do" in DOC
    assert "--subject system:serviceaccount:modelplane:$sa" in DOC
    for path in re.findall(r"`(deploy/[^`\s]+)`", DOC):
        assert (REPO_ROOT / path.split(" ")[0]).exists(), path


def test_the_az_steps_cover_the_issue() -> None:
    for needle in (
        "az group create",
        "az monitor log-analytics workspace create",
        "az acr create",
        "--enable-oidc-issuer --enable-workload-identity",
        "--enable-addons monitoring --workspace-resource-id",
        "--attach-acr",
        "az postgres flexible-server create",
        "az redis create",
        "az identity create",
        "az identity federated-credential create",
        "--role AcrPush",
        "MLFLOW_TRACKING_URI=databricks",
        "MLFLOW_REGISTRY_URI=databricks-uc",
        "kubectl apply -k deploy/kubernetes/overlays/aks",
        "## 10. Upgrading",
    ):
        assert needle in DOC, needle
