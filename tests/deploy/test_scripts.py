"""The shell scripts: shellcheck where installed (Debian package shellcheck), else `sh -n`/`bash -n`."""

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
    for step in ("tests/engine/test_gpu.py", "build_engine.py", "--compare-onnxruntime", "--backend tensorrt",
                 "/readyz", "/segment", "x-backend: tensorrt"):
        assert step in text
