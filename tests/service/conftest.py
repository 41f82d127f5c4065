"""Fixtures for the service tests: models in a models directory, real images, real server processes.

They live in tests/support/ (shared with the reliability and demo tests); the helpers the tests
import from here are re-exported below.
"""

from tests.support.fixtures import (  # noqa: F401 - fixtures
    camvid_image,
    cards,
    dataset_root,
    kvasir_images,
    models_dir,
    segmentation_model,
    service,
    service_factory,
)
from tests.support.service import ServiceProcess, free_port, run_onnx  # noqa: F401 - imported by the tests
