"""python -m training.average --into checkpoints/polyp-soup \\
       checkpoints/polyp-recovered:0.35 checkpoints/polyp-appearance-2:0.65

A weighted average of checkpoints of one network, weight by weight ("model soup", Wortsman et al.
2022): fine-tunes of one starting point lie in one basin, and their average often keeps the best
of each. Here it keeps the shipped polyp model's clean Kvasir val Dice and most of an appearance
fine-tune's gain under shift (docs/ACCURACY.md).

The weight files must hold the same arrays (names, shapes, dtypes). Floating-point arrays are
averaged; the others (random-generator states, counters: not learned) are copied from the first
ingredient; optimizer state is left out. The result is a run directory like any other
(`best.weights.h5` + `config.json`): the config is the heaviest ingredient's, with `averaged_from`
recording every ingredient, its share and the commands that made it, so export and the model card
can replay the whole chain.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from training.checkpoint import resolve_checkpoint

WEIGHT_TOLERANCE = 1e-6  # how far the shares may sum from 1
OPTIMIZER_GROUP = "optimizer"  # where Keras keeps a compiled model's optimizer state in a .weights.h5


@dataclass(frozen=True)
class Ingredient:
    path: Path  # a run directory or a .weights.h5 file
    share: float


def parse_ingredient(text: str) -> Ingredient:
    """`PATH:SHARE` -> an ingredient (argparse type)."""
    path, separator, share = text.rpartition(":")
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if not separator or not path or not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHECKPOINT:SHARE with a share > 0")
    return Ingredient(Path(path), value)


def _arrays(weights: h5py.File) -> dict[str, h5py.Dataset]:
    """The network's arrays by path; the optimizer's state (a training run's files hold it) is not the network."""
    found: dict[str, h5py.Dataset] = {}
    weights.visititems(lambda name, item: found.__setitem__(name, item) if isinstance(item, h5py.Dataset) else None)
    return {name: item for name, item in found.items() if not name.startswith(f"{OPTIMIZER_GROUP}/")}


def _layout(arrays: dict[str, h5py.Dataset]) -> dict[str, tuple]:
    """What two files must share to hold one network: each array's path, shape and dtype."""
    return {name: (dataset.shape, dataset.dtype) for name, dataset in arrays.items()}


def average(ingredients: list[Ingredient], into: Path, command: str) -> int:
    """Write the shares-weighted average of the ingredients to `into`; returns how many arrays were averaged."""
    if len(ingredients) < 2:
        raise ValueError("average at least two checkpoints")
    total = sum(ingredient.share for ingredient in ingredients)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"the shares sum to {total:g}, not 1")
    checkpoints = [resolve_checkpoint(ingredient.path) for ingredient in ingredients]
    into.mkdir(parents=True, exist_ok=True)
    target = into / "best.weights.h5"
    shutil.copyfile(checkpoints[0].weights_path, target)  # the layout and Keras' attributes, as they are
    files = [h5py.File(checkpoint.weights_path, "r") for checkpoint in checkpoints[1:]]
    try:
        with h5py.File(target, "r+") as out:
            if OPTIMIZER_GROUP in out:  # the first ingredient's moments mean nothing for the average
                del out[OPTIMIZER_GROUP]
            table, others = _arrays(out), [_arrays(weights) for weights in files]
            layout = _layout(table)
            for checkpoint, other in zip(checkpoints[1:], others):
                other_layout = _layout(other)
                mismatched = sorted(name for name in layout.keys() | other_layout.keys()
                                    if layout.get(name) != other_layout.get(name))
                if mismatched:
                    raise ValueError(f"{checkpoint.weights_path} is not the same network as "
                                     f"{checkpoints[0].weights_path}: {len(mismatched)} array(s) differ, "
                                     f"e.g. {mismatched[0]!r}")
            averaged = 0
            for name, dataset in table.items():
                if dataset.dtype.kind != "f":
                    continue
                mean = ingredients[0].share * dataset[()].astype(np.float64)
                for ingredient, other in zip(ingredients[1:], others):
                    mean += ingredient.share * other[name][()].astype(np.float64)
                dataset[...] = mean.astype(dataset.dtype)
                averaged += 1
    except Exception:
        target.unlink()
        raise
    finally:
        for weights in files:
            weights.close()
    heaviest = max(zip(ingredients, checkpoints), key=lambda pair: pair[0].share)[1]
    config = {**heaviest.config, "averaged_from": {
        "ingredients": [{"path": str(ingredient.path), "share": ingredient.share,
                         "commands": checkpoint.training_commands}
                        for ingredient, checkpoint in zip(ingredients, checkpoints)],
        "command": command}}
    (into / "config.json").write_text(json.dumps(config, indent=2))
    return averaged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.average", description=__doc__.splitlines()[0])
    parser.add_argument("ingredients", nargs="+", type=parse_ingredient, help="CHECKPOINT:SHARE, shares summing to 1.")
    parser.add_argument("--into", type=Path, required=True, help="The run directory to write.")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "training.average", *(sys.argv[1:] if argv is None else argv)])
    averaged = average(args.ingredients, args.into, command)
    print(f"{args.into}: {averaged} arrays averaged from {len(args.ingredients)} checkpoints")


if __name__ == "__main__":
    main()
