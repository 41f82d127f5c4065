"""The model repository and its versions, in-process on the tiny models: layouts, the latest policy, atomic swaps."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelcard.card import ModelCard, load_card
from service import telemetry
from service.errors import ServiceError
from service.registry import ModelRegistry
from service.repository import scan
from service.settings import Settings
from tests.support.service import PROJECT_ROOT, add_version


def grey(card: ModelCard) -> np.ndarray:
    return np.full((*card.input_size, 3), 128, dtype=np.uint8)


def loads(model: str, result: str) -> float:
    return telemetry.MODEL_LOADS.labels(model=model, result=result)._value.get()


async def loaded(repo: Path, **settings) -> ModelRegistry:
    """A registry on `repo` with every model loaded, as the service's start-up leaves it."""
    registry = ModelRegistry(Settings(models=repo, backend="onnx-cpu", onnx={"intra_op_threads": 2}, **settings))
    registry.discover()
    await registry.load_all()
    return registry


def test_flat_and_versioned_layouts_and_what_is_wrong_with_a_version(tiny_cards, tmp_path):
    polyp, camvid = tiny_cards["polyp"], tiny_cards["camvid"]
    add_version(tmp_path, polyp, None)
    add_version(tmp_path, polyp, 1)  # the flat card already is version 1
    add_version(tmp_path, camvid, 3)
    add_version(tmp_path, camvid, 10)
    shutil.move(add_version(tmp_path, polyp, 7), tmp_path / "camvid" / "4")
    (tmp_path / "camvid" / "latest").mkdir()  # not a version: ignored, as Triton does
    (tmp_path / "camvid" / "²").mkdir()  # "²".isdigit(), yet no version either
    (tmp_path / "camvid" / "5").mkdir()
    index = scan(tmp_path)
    assert list(index["camvid"]) == [3, 4, 5, 10]  # numeric order, not by name
    assert index["polyp"][1].card is not None and index["polyp"][1].card_path.parent == tmp_path
    assert "also" in index["polyp@polyp.json"][1].error
    assert "card names model 'polyp', but it sits in camvid/" in index["camvid"][4].error
    assert "exactly one model card (found none)" in index["camvid"][5].error
    assert index["camvid"][10].card.name == "camvid" and index["camvid"][10].error is None


def test_a_new_version_swaps_in_when_ready_and_the_old_one_finishes_its_requests_first(tiny_cards, tmp_path):
    polyp = tiny_cards["polyp"]
    add_version(tmp_path, polyp, 1)

    async def scenario():
        registry = await loaded(tmp_path)
        assert registry.get("polyp").version == 1
        entry = registry.models["polyp"].serving[1]
        add_version(tmp_path, polyp, 2)
        async with registry.use("polyp") as old:  # a request that holds version 1 across the swap
            swap = asyncio.create_task(registry.refresh(registry.scan(), ["polyp"]))
            while registry.get("polyp").version != 2:
                await asyncio.sleep(0.01)
            assert entry.loaded is old  # still usable by its request
            output = await old.batcher.submit(grey(polyp), want_probabilities=False)
            assert output.labels.shape == polyp.input_size
            assert not swap.done()  # the release waits for this request
        await asyncio.wait_for(swap, 30)
        assert entry.loaded is None and registry.models["polyp"].versions() == [(2, "ready", None)]
        with pytest.raises(ServiceError) as gone:
            registry.get("polyp", 1)
        assert gone.value.status == 404 and gone.value.code == "version_not_found"
        await registry.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("breakage", ["corrupt onnx", "wrong class count", "unreadable card"])
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(tiny_cards, tmp_path, breakage):
    polyp = tiny_cards["polyp"]
    add_version(tmp_path, polyp, 1)

    async def scenario():
        registry = await loaded(tmp_path)
        failures = loads("polyp", "failure")
        if breakage == "corrupt onnx":
            add_version(tmp_path, polyp, 2, onnx=b"not an onnx graph" * 100)
        elif breakage == "wrong class count":
            add_version(tmp_path, polyp, 2, edit=lambda card: card["classes"].append(
                {"id": 2, "name": "extra", "color": [0, 0, 255]}))
        else:
            (add_version(tmp_path, polyp, 2) / polyp.path.name).write_text("{truncated")
        await registry.refresh(registry.scan(), ["polyp"])
        model = registry.models["polyp"]
        assert registry.get("polyp").version == 1 and registry.ready
        assert model.status == "ready" and model.error.startswith("version 2: ")
        assert [(v, status) for v, status, _ in model.versions()] == [(2, "failed"), (1, "ready")]
        assert loads("polyp", "failure") == failures + 1
        with pytest.raises(ServiceError) as pinned:
            registry.get("polyp", 2)
        assert pinned.value.status == 503 and pinned.value.code == "model_unavailable"
        await registry.refresh(registry.scan(), ["polyp"])  # the same broken files are not retried
        assert loads("polyp", "failure") == failures + 1
        await registry.close()

    asyncio.run(scenario())


def test_latest_policy_keeps_the_n_highest_versions_and_a_removed_model_is_unloaded(tiny_cards, tmp_path):
    polyp = tiny_cards["polyp"]
    for version in (1, 2, 3):
        add_version(tmp_path, polyp, version)

    async def scenario():
        registry = await loaded(tmp_path, model_versions=2)
        assert [v for v, status, _ in registry.models["polyp"].versions() if status == "ready"] == [3, 2]
        assert registry.get("polyp").version == 3 and registry.get("polyp", 2).version == 2
        shutil.rmtree(tmp_path / "polyp" / "3")  # roll back: 2 and 1 serve
        await registry.refresh(registry.scan(), ["polyp"])
        assert registry.get("polyp").version == 2 and registry.get("polyp", 1).version == 1
        shutil.rmtree(tmp_path / "polyp")
        await registry.refresh(registry.scan(), ["polyp"])
        assert "polyp" not in registry.models
        await registry.close()

    asyncio.run(scenario())


def test_a_repository_empty_at_start_up_is_ready_once_a_model_arrives(tiny_cards, tmp_path):
    async def scenario():
        registry = await loaded(tmp_path)
        assert "no model cards" in registry.problem and not registry.ready
        add_version(tmp_path, tiny_cards["polyp"], 1)
        await registry.refresh(registry.scan(), ["polyp"])
        assert registry.problem is None and registry.ready and registry.get(None).name == "polyp"
        await registry.close()

    asyncio.run(scenario())


def test_a_version_replaced_in_place_swaps_and_a_failed_replacement_is_moot_once_the_files_are_back(tiny_cards,
                                                                                                    tmp_path):
    polyp = tiny_cards["polyp"]
    repo, backup = tmp_path / "repo", tmp_path / "backup"
    shutil.copytree(add_version(repo, polyp, None), backup)  # copytree keeps the mtimes: the same fingerprint

    async def scenario():
        registry = await loaded(repo)
        first, entry = registry.get("polyp"), registry.models["polyp"].serving[1]
        add_version(repo, polyp, None, onnx=b"a corrupt graph" * 64)  # version 1 replaced by broken files
        await registry.refresh(registry.scan(), ["polyp"])
        assert registry.get("polyp") is first and registry.models["polyp"].error.startswith("version 1: ")
        shutil.copytree(backup, repo, dirs_exist_ok=True)
        await registry.refresh(registry.scan(), ["polyp"])
        assert registry.get("polyp") is first and registry.models["polyp"].error is None
        add_version(repo, polyp, None)  # new files (new mtimes), same version: a swap
        await registry.refresh(registry.scan(), ["polyp"])
        assert registry.get("polyp") is not first and entry.loaded is None
        await registry.close()

    asyncio.run(scenario())


def test_a_versions_fingerprint_moves_when_its_int8_variant_is_replaced(tmp_path):
    """A version copied in card first and INT8 file last must not look settled while that file still grows."""
    bundled = load_card(PROJECT_ROOT / "engines" / "polyp.json")
    shutil.copy2(bundled.path, tmp_path / "polyp.json")
    card = load_card(tmp_path / "polyp.json")
    assert [path.name for path in card.model_files] == [bundled.files.onnx, bundled.files.onnx_int8]
    for path in card.model_files:
        path.write_bytes(b"graph")
    before = scan(tmp_path)["polyp"][1].fingerprint
    card.onnx_file("int8").write_bytes(b"a longer graph")
    assert scan(tmp_path)["polyp"][1].fingerprint != before
