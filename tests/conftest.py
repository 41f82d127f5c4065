"""Fixtures every test area shares: models in a models directory (the bundled ones, else tiny
exports), real images, and real service processes (helpers in ``tests/support/``).

Session-scoped, so the tiny-model export runs once per session; areas add their own fixtures in
their own conftest, and tests import helpers from ``tests.support``, never from a conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelcard.card import ModelCard, load_card
from modelcard.files import find_cards
from tests.support.service import ServiceProcess, models_for_tests, tiny_models
from training.datasets import data_root


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return models_for_tests(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def cards(models_dir) -> dict[str, ModelCard]:
    return {card.name: card for card in map(load_card, find_cards(models_dir))}


@pytest.fixture(scope="session")
def tiny_cards(tmp_path_factory) -> dict[str, ModelCard]:
    """The 128x128 test models (tests/support/service.py), whatever `models_dir` serves."""
    engines = tiny_models(tmp_path_factory.getbasetemp())
    return {card.name: card for card in map(load_card, find_cards(engines))}


@pytest.fixture(scope="session")
def segmentation_model(cards) -> ModelCard:
    """A model whose palette and classes the tests check against (the 2-class one if there is one)."""
    return min(cards.values(), key=lambda card: (card.num_classes, card.name))


@pytest.fixture(scope="session")
def dataset_root() -> Path:
    root = data_root()
    if not (root / "kvasir-seg" / "images").is_dir() or not (root / "camvid" / "val").is_dir():
        pytest.skip(f"real datasets not found under {root} (set DEEPLAB_DATA_ROOT)")
    return root


@pytest.fixture(scope="session")
def kvasir_images(dataset_root) -> list[Path]:
    """Three Kvasir-SEG validation images: the first, the smallest and the largest."""
    from PIL import Image

    ids = (dataset_root / "kvasir-seg" / "splits" / "val.txt").read_text().split()
    paths = [dataset_root / "kvasir-seg" / "images" / f"{sample_id}.jpg" for sample_id in ids]
    areas = {}
    for path in paths:
        with Image.open(path) as image:
            areas[path] = image.width * image.height
    return [paths[0], min(paths, key=areas.get), max(paths, key=areas.get)]


@pytest.fixture(scope="session")
def camvid_image(dataset_root) -> Path:
    return sorted((dataset_root / "camvid" / "val").glob("*.png"))[0]


@pytest.fixture
def service_factory(models_dir, tmp_path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start servers with extra flags/environment; every one is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(args: list[str] | None = None, env: dict[str, str] | None = None, wait_ready: bool = True,
              models: Path | None = None, module: str = "service") -> ServiceProcess:
        server = ServiceProcess(models or models_dir, tmp_path / f"service-{len(started)}.log", args or [], env or {},
                                module=module)
        started.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def service(models_dir, tmp_path_factory) -> Iterator[ServiceProcess]:
    """One server per test module, default settings."""
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("service") / "service.log").start()
    yield server
    server.stop()
