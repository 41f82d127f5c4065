"""training.average: a weighted average of checkpoints that loads, holds what its shares say, and replays its chain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from training.average import Ingredient, average, parse_ingredient  # noqa: E402
from training.checkpoint import merge_chains, resolve_checkpoint  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.model import build_deeplab  # noqa: E402

SIZE = 64


def network(seed: int, alpha: float = 0.35) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_deeplab(2, input_size=(SIZE, SIZE), backbone_options={"alpha": alpha})


def write_run(directory, model: keras.Model, run_name: str, **config) -> None:
    directory.mkdir()
    settings = {**TrainConfig(run_name=run_name, dataset="kvasir", backbone_options={"alpha": 0.35}).to_dict(),
                "num_classes": 2, "classes": ["background", "polyp"], "palette": [[0, 0, 0], [255, 255, 255]],
                **config}
    (directory / "config.json").write_text(json.dumps(settings))
    model.save_weights(directory / "best.weights.h5")


def test_the_average_holds_each_weight_mixed_by_the_shares_and_skips_the_optimizer(tmp_path):
    first, second = network(0), network(1)
    second.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    second.fit(np.zeros((2, SIZE, SIZE, 3), "float32"), np.zeros((2, SIZE, SIZE), "int32"), verbose=0)
    write_run(tmp_path / "a", first, "a")
    write_run(tmp_path / "b", second, "b")  # its file also holds the optimizer's state

    averaged = average([Ingredient(tmp_path / "a", 0.25), Ingredient(tmp_path / "b", 0.75)], tmp_path / "soup",
                       "python -m training.average ...")

    soup = network(2)
    soup.load_weights(tmp_path / "soup" / "best.weights.h5")
    assert averaged == len(soup.weights)
    for mixed, a, b in zip(soup.weights, first.weights, second.weights):
        expected = 0.25 * np.asarray(a) + 0.75 * np.asarray(b)
        np.testing.assert_allclose(np.asarray(mixed), expected, rtol=1e-5, atol=1e-7, err_msg=a.path)
    assert not np.allclose(np.asarray(soup.weights[0]), np.asarray(first.weights[0]))
    config = json.loads((tmp_path / "soup" / "config.json").read_text())
    assert config["run_name"] == "b"  # the heaviest ingredient's settings
    assert [entry["share"] for entry in config["averaged_from"]["ingredients"]] == [0.25, 0.75]


def test_the_average_replays_each_ingredients_chain_then_itself(tmp_path):
    write_run(tmp_path / "parent", network(0), "parent", recovered_from={"commands": ["train parent", "recover"]})
    write_run(tmp_path / "child", network(1), "child", init_weights=str(tmp_path / "parent"))
    stages = [{"command": "train child", "epochs": 2, "from_epoch": 0}]
    (tmp_path / "child" / "stages.json").write_text(json.dumps(stages))
    (tmp_path / "child" / "state.json").write_text(json.dumps({"epochs_done": 2}))

    average([Ingredient(tmp_path / "parent", 0.5), Ingredient(tmp_path / "child", 0.5)], tmp_path / "soup",
            "python -m training.average soup")

    child_chain = resolve_checkpoint(tmp_path / "child").training_commands
    assert child_chain[:2] == ["train parent", "recover"]
    assert resolve_checkpoint(tmp_path / "soup").training_commands == [*child_chain, "python -m training.average soup"]


def test_chains_merge_by_their_shared_start_only():
    assert merge_chains([["p", "a"], ["p", "b"]]) == ["p", "a", "b"]
    assert merge_chains([["p"], ["p", "b"]]) == ["p", "b"]
    assert merge_chains([["r", "t", "r"], ["r", "t", "r", "u"]]) == ["r", "t", "r", "u"]  # a later repeat stays
    assert merge_chains([["x"], ["y"]]) == ["x", "y"]


def test_different_networks_or_bad_shares_are_refused(tmp_path):
    write_run(tmp_path / "a", network(0), "a")
    write_run(tmp_path / "wider", network(1, alpha=0.5), "wider")
    with pytest.raises(ValueError, match="not the same network"):
        average([Ingredient(tmp_path / "a", 0.5), Ingredient(tmp_path / "wider", 0.5)], tmp_path / "soup", "cmd")
    assert not (tmp_path / "soup" / "best.weights.h5").exists()
    with pytest.raises(ValueError, match="sum to 0.9"):
        average([Ingredient(tmp_path / "a", 0.4), Ingredient(tmp_path / "a", 0.5)], tmp_path / "soup", "cmd")
    with pytest.raises(ValueError, match="at least two"):
        average([Ingredient(tmp_path / "a", 1.0)], tmp_path / "soup", "cmd")
    assert parse_ingredient("runs/a:0.35") == Ingredient(Path("runs/a"), 0.35)
    for text in ("runs/a", "runs/a:zero", "runs/a:-1", ":0.5"):
        with pytest.raises(Exception, match="CHECKPOINT:SHARE"):
            parse_ingredient(text)
