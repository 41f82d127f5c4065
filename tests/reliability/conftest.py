"""Reliability tests start real service processes (the shared fixtures are in tests/conftest.py)."""

import pytest

from benchmarks import procfs


@pytest.fixture
def requires_procfs() -> None:
    """Skip where there is no Linux /proc to read resident memory and file descriptors from."""
    if not procfs.available():
        pytest.skip("needs Linux /proc to read resident memory and file descriptors")
