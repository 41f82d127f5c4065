"""The benchmark tests use the shared models and real images of tests/support/."""

from tests.support.fixtures import cards, dataset_root, kvasir_images, models_dir, segmentation_model  # noqa: F401
