"""Reliability tests start real service processes with the shared fixtures of tests/support/."""

import pytest

from benchmarks import procfs
from tests.support.fixtures import (  # noqa: F401 - fixtures
    camvid_image,
    cards,
    dataset_root,
    kvasir_images,
    models_dir,
    service_factory,
)


@pytest.fixture
def requires_procfs() -> None:
    """Skip where there is no Linux /proc to read resident memory and file descriptors from."""
    if not procfs.available():
        pytest.skip("needs Linux /proc to read resident memory and file descriptors")
