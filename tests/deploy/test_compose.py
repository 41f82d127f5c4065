"""docker-compose.yml checked by Docker Compose itself, then for what the GPU deployment needs."""

import json
import subprocess

import pytest


def compose(binary, project_root, *args, file="docker-compose.yml"):
    return subprocess.run([str(binary), "-f", str(file), *args], cwd=project_root,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def resolved(compose_binary, project_root):
    result = compose(compose_binary, project_root, "--profile", "cpu", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid(compose_binary, project_root):
    result = compose(compose_binary, project_root, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_a_broken_file(compose_binary, project_root, tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((project_root / "docker-compose.yml").read_text().replace("healthcheck:", "healtcheck:", 1))
    result = compose(compose_binary, project_root, "config", "--quiet", file=broken)
    assert result.returncode != 0 and "'healtcheck' not allowed" in result.stderr


def test_default_services_and_cpu_profile(compose_binary, project_root, resolved):
    default = compose(compose_binary, project_root, "config", "--services").stdout.split()
    assert sorted(default) == ["grafana", "prometheus", "segmentation"]
    assert "segmentation-cpu" in resolved["services"]
    assert resolved["services"]["segmentation-cpu"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"


def test_gpu_service_reserves_a_gpu_caches_engines_and_checks_readiness(resolved):
    service = resolved["services"]["segmentation"]
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    mounts = {volume["target"]: volume for volume in service["volumes"]}
    cache = mounts["/var/cache/deeplab/engines"]
    assert cache["type"] == "volume" and cache["source"] == "engine-cache"
    assert mounts["/data"]["read_only"] is True
    for service_name in ("segmentation", "segmentation-cpu"):
        assert any(port["target"] == 8000 for port in resolved["services"][service_name]["ports"])


def test_monitoring_services_mount_their_config(resolved, project_root):
    prometheus = {v["target"]: v["source"] for v in resolved["services"]["prometheus"]["volumes"]}
    assert prometheus["/etc/prometheus/prometheus.yml"] == str(project_root / "docker" / "prometheus.yml")
    grafana = {v["target"]: v["source"] for v in resolved["services"]["grafana"]["volumes"]}
    assert grafana["/var/lib/grafana/dashboards"] == str(project_root / "docker" / "grafana" / "dashboards")
