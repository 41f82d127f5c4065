"""Fixtures for the service tests: models in a models directory, real images, real server processes.

They live in tests/support/ (shared with the reliability and demo tests); the helpers the tests
import from here are re-exported below.
"""

from pathlib import Path

import pytest

from tests.support.fixtures import *  # noqa: F403 - the shared service fixtures
from tests.support.service import ServiceProcess, free_port, run_onnx  # noqa: F401 - imported by the tests


@pytest.fixture(scope="session")
def one_model_dir(segmentation_model, tmp_path_factory) -> Path:
    """A models directory with only `segmentation_model` (links to its files): for tests about the
    server's behaviour, not about models, so each of their servers loads and warms up one model."""
    directory = tmp_path_factory.mktemp("one-model")
    for path in (segmentation_model.path, segmentation_model.onnx_path):
        (directory / path.name).symlink_to(path.resolve())
    return directory
