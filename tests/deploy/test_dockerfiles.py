"""Both Dockerfiles pass hadolint (info level and up) and keep the rules the images promise."""

import re
import subprocess

import pytest

DOCKERFILES = ["docker/Dockerfile", "docker/Dockerfile.cpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(hadolint, project_root, dockerfile):
    result = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", dockerfile], cwd=project_root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(hadolint, tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /app && pip install fastapi\n")
    result = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3042" in result.stdout  # untagged base image, pip cache


def stages(text: str) -> list[str]:
    """The Dockerfile split at each FROM."""
    return re.split(r"(?m)^FROM ", text)[1:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_multi_stage_non_root_without_compilers_in_the_final_stage(project_root, dockerfile):
    builder, final = stages((project_root / dockerfile).read_text())
    assert "build-essential" in builder
    assert "apt-get install" not in final and "build-essential" not in final
    assert re.search(r"(?m)^USER 10001:10001$", final)
    assert "COPY --from=builder /opt/venv /opt/venv" in final


def test_gpu_image_is_based_on_ngc_tensorrt_and_starts_through_the_entrypoint(project_root):
    text = (project_root / "docker/Dockerfile").read_text()
    assert re.search(r"(?m)^ARG TENSORRT_IMAGE=nvcr\.io/nvidia/tensorrt:\S+-py3$", text)
    assert 'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]' in text
    entrypoint = (project_root / "docker/entrypoint.sh").read_text()
    assert "python -m service.tensorrt.ensure_engines" in entrypoint
    assert entrypoint.rstrip().endswith('exec python -m service "$@"')
