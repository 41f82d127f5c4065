"""The shell scripts: shellcheck where installed (Debian package shellcheck), else `sh -n`/`bash -n`."""

import re
import shutil
import subprocess

import pytest

SCRIPTS = {"docker/entrypoint.sh": "sh", "scripts/gpu_check.sh": "bash"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(project_root, script):
    result = subprocess.run([SCRIPTS[script], "-n", script], cwd=project_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_passes(project_root, script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (Debian package shellcheck)")
    result = subprocess.run([shellcheck, script], cwd=project_root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_gpu_check_runs_every_gpu_step(project_root):
    text = (project_root / "scripts/gpu_check.sh").read_text()
    for step in ("nvidia-smi", '"$PYTHON" -m service.backends.tensorrt.host',
                 "tests/engine/test_gpu.py", "build_engine.py", "--opt-batch 8", "--compare-onnxruntime",
                 "build_engine.py report", "--backend tensorrt", "/readyz", "/segment", "x-backend: tensorrt"):
        assert step in text


def test_gpu_check_installs_nothing(project_root):
    """Commands that install appear only in what it tells the user, never as a step it runs."""
    lines = (project_root / "scripts/gpu_check.sh").read_text().splitlines()
    code = [line for line in lines if not line.lstrip().startswith("#")]
    installing = [line for line in code
                  if re.search(r"^\s*(sudo\s+)?(pip3?|uv|apt-get|apt|conda)\s+(install|sync|add)\b", line)
                  or re.search(r"-m\s+pip\s+install", line)]
    assert installing == []


def test_gpu_check_stops_with_the_install_hint_when_a_tool_is_missing(project_root, tmp_path):
    """On this machine (no NVIDIA driver) it must stop before doing anything, saying what is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "basename", "find", "sort", "head", "mktemp", "git", "date"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "engines/polyp.onnx"], cwd=project_root,
                            env={"PATH": str(bin_dir), "GPU_CHECK_DIR": str(tmp_path / "work")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "gpu_check: nvidia-smi not found: install the NVIDIA driver" in result.stderr
    assert not (tmp_path / "work").exists()
