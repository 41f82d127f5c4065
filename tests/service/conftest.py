"""Fixtures of the service tests alone (the shared ones are in tests/conftest.py)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def one_model_dir(segmentation_model, tmp_path_factory) -> Path:
    """A models directory with only `segmentation_model` (links to its files): for tests about the
    server's behaviour, not about models, so each of their servers loads and warms up one model."""
    directory = tmp_path_factory.mktemp("one-model")
    for path in (segmentation_model.path, segmentation_model.onnx_path):
        (directory / path.name).symlink_to(path.resolve())
    return directory
