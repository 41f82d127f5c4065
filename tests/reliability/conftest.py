"""Reliability tests start real service processes with the shared fixtures of tests/support/."""

from tests.support.fixtures import (  # noqa: F401 - fixtures
    camvid_image,
    cards,
    dataset_root,
    kvasir_images,
    models_dir,
    service_factory,
)
