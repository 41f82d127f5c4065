"""deploy/kubernetes/ against the Kubernetes API schemas (kubernetes-validate ships them)."""

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="dev group: kubernetes-validate")

MANIFESTS = ["deployment.yaml", "service.yaml", "hpa.yaml"]


def load(project_root, name):
    return yaml.safe_load((project_root / "deploy" / "kubernetes" / name).read_text())


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_matches_the_kubernetes_schema(project_root, name):
    kubernetes_validate.validate(load(project_root, name), kubernetes_validate.latest_version(), strict=True)


def test_the_validator_rejects_a_misspelt_field(project_root):
    deployment = load(project_root, "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest(project_root):
    assert load(project_root, "kustomization.yaml")["resources"] == MANIFESTS


def test_gpu_probes_and_wiring(project_root):
    deployment = load(project_root, "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 900
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    data = mounts["/data"]  # DEEPLAB_DATA_ROOT in the image: real images for the build's parity check
    assert data["readOnly"] is True and volumes[data["name"]]["persistentVolumeClaim"]["readOnly"] is True
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert load(project_root, "service.yaml")["spec"]["selector"] == selector
    target = load(project_root, "hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
