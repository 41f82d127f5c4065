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
    # NGC's entrypoint (driver and forward-compatibility checks) still runs, then ours
    assert 'ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "/usr/local/bin/entrypoint.sh"]' in text
    assert "RUN python -m service.backends.tensorrt.host" in stages(text)[1]  # TensorRT visible, CUDA majors agree
    entrypoint = (project_root / "docker/entrypoint.sh").read_text()
    assert "python build_engine.py ensure" in entrypoint
    assert entrypoint.rstrip().endswith('exec python -m service "$@"')


def test_entrypoint_builds_on_the_gpu_the_service_serves_on(project_root, monkeypatch):
    from service.settings import Settings

    entrypoint = (project_root / "docker/entrypoint.sh").read_text()
    assert '--device "${SEG_ONNX__CUDA_DEVICE_ID:-0}"' in entrypoint
    monkeypatch.setenv("SEG_ONNX__CUDA_DEVICE_ID", "1")
    assert Settings().onnx.cuda_device_id == 1  # the variable the service reads its GPU from


def locked_versions(project_root) -> dict[str, set[str]]:
    import tomllib

    lock = tomllib.loads((project_root / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package.get("version", ""))
    return versions


def test_gpu_image_installs_the_locked_versions_with_hashes_for_its_python(project_root):
    """uv.lock is for CPython 3.11, the NGC image runs 3.12: its requirements file must pin the
    lock's versions, each with hashes, and be what the Dockerfile installs with --require-hashes."""
    text = (project_root / "docker/Dockerfile").read_text()
    assert "COPY docker/requirements-gpu-cp312.txt" in text and "--require-hashes" in text
    requirements = (project_root / "docker/requirements-gpu-cp312.txt").read_text()
    entries = re.split(r"(?m)^(?=[a-z0-9])", requirements)[1:]
    pins = dict(re.match(r"([a-z0-9._-]+)==([^\s;]+)", entry).groups() for entry in entries)
    assert all("--hash=sha256:" in entry for entry in entries)
    locked = locked_versions(project_root)
    drifted = {name: version for name, version in pins.items() if version not in locked.get(name, set())}
    assert drifted == {}, f"not the uv.lock versions: {drifted}"
    assert {"onnxruntime-gpu", "cuda-python", "cuda-bindings", "fastapi", "pydensecrf2"} <= set(pins)
    assert pins["cuda-bindings"].split(".")[0] == "13"  # the 25.xx NGC tags are CUDA 13
