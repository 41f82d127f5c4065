"""Find a training run's weights and config, and rebuild its network at any input size.

``training.train`` writes ``<run>/config.json`` next to ``best.weights.h5``/``last.weights.h5``.
DeepLabv3+ weights do not depend on the input size, so export and evaluation rebuild the model at
the size they need (512x512 for the shipped models) and load the trained weights into it.
A run trained in stages (``--epochs 12``, later ``--epochs 30`` on the same run, which resumes
with a longer cosine schedule) lists each stage's command in ``stages.json``, so that the model
card can replay all of them, not only the last.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.config import train_command

WEIGHT_FILES = ("best.weights.h5", "last.weights.h5")
REQUIRED_CONFIG_KEYS = ("dataset", "num_classes", "classes", "palette", "backbone")
STAGES_FILE = "stages.json"
STATE_FILE = "state.json"
FOLDED_BATCHNORM = "folded"  # config["batchnorm"] of a checkpoint training.recover wrote


@dataclass(frozen=True)
class Checkpoint:
    run_dir: Path
    weights_path: Path
    config: dict

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.json"

    @property
    def training_commands(self) -> list[str]:
        """The commands that, run in order, reproduce these weights: those of the run it was
        fine-tuned from (``init_weights``) first, then each of its own stages; for an average, the
        ingredients' chains (``merge_chains``) and then the ``training.average`` command."""
        if averaged := self.config.get("averaged_from"):  # training.average
            return [*merge_chains([ingredient["commands"] for ingredient in averaged["ingredients"]]),
                    averaged["command"]]
        if recovered := self.config.get("recovered_from"):  # training.recover: from a shipped ONNX file
            return list(recovered["commands"])
        parent = self.config.get("init_weights")
        before = resolve_checkpoint(parent).training_commands if parent else []
        stages = _read_stages(self.run_dir)
        if not stages:
            return [*before, train_command(self.config)]
        # A stage ends where the next one began; the last one where the run is now.
        ends = [stage["from_epoch"] for stage in stages[1:]] + [epochs_done(self.run_dir)]
        return [*before, *(_stage_command(stage, end) for stage, end in zip(stages, ends))]


def merge_chains(chains: list[list[str]]) -> list[str]:
    """Command chains run one after another, each without the start it shares with what already ran
    (an ingredient fine-tuned from another repeats that one's whole chain). Only a shared start is
    dropped: a command that recurs later (a second `training.recover` of a newer file) runs again."""
    merged: list[str] = []
    for chain in chains:
        shared = 0
        while shared < min(len(merged), len(chain)) and merged[shared] == chain[shared]:
            shared += 1
        merged += chain[shared:]
    return merged


def resolve_checkpoint(path: str | Path) -> Checkpoint:
    """``path`` is a run directory (uses best, else last weights) or a ``*.weights.h5`` file whose
    directory holds ``config.json``."""
    path = Path(path)
    if path.is_file():
        if not path.name.endswith(".weights.h5"):
            raise ValueError(f"{path}: expected a run directory or a .weights.h5 file")
        run_dir, weights_path = path.parent, path
    elif path.is_dir():
        run_dir = path
        candidates = [path / name for name in WEIGHT_FILES]
        weights_path = next((c for c in candidates if c.is_file()), None)
        if weights_path is None:
            raise FileNotFoundError(f"{path}: no {' or '.join(WEIGHT_FILES)} in this run directory")
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; the run's config.json must sit next to the weights")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from None
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(f"{config_path}: missing required field(s) {missing}")
    return Checkpoint(run_dir, weights_path, config)


def network_input_size(input_size: tuple[int, int], inference_scale: float, output_stride: int) -> tuple[int, int]:
    """The size the network runs at: ``input_size`` times ``inference_scale``, each side rounded to a
    multiple of the output stride (which DeepLabv3+ needs)."""
    if not 0.25 <= inference_scale <= 4.0:
        raise ValueError(f"inference_scale must be in [0.25, 4], got {inference_scale}")
    return tuple(max(output_stride, round(side * inference_scale / output_stride) * output_stride)
                 for side in input_size)


FLIP_AXES = {"horizontal": 2, "vertical": 1}  # NHWC axis each test-time flip reverses


def load_model(checkpoint: Checkpoint, input_size: tuple[int, int], inference_scale: float = 1.0,
               flips: Sequence[str] = ()):
    """The run's DeepLabv3+ taking ``input_size`` (height, width) images, with the trained weights,
    built for inference (no sync BN, no gradient checkpointing: those only change training).

    With ``inference_scale`` other than 1 the network runs at ``network_input_size`` between two
    bilinear resizes (image up, logits back down), so callers still send and receive ``input_size``:
    a model can see objects at the scale it segments best without changing its interface.
    With ``flips`` the model averages the class probabilities of every combination of those flips
    (test-time augmentation: 2 or 4 passes, run as one batch); see ``averaged_over_flips``.
    """
    import keras

    from training.model import build_deeplab

    unknown = sorted(set(flips) - set(FLIP_AXES))
    if unknown:
        raise ValueError(f"unknown test-time flip(s) {unknown}; choose from {sorted(FLIP_AXES)}")
    config = checkpoint.config
    optional = {key: config[key] for key in ("output_stride", "aspp_rates", "dropout", "bn_momentum", "decoder")
                if config.get(key) is not None}
    input_size = tuple(input_size)
    network_size = network_input_size(input_size, inference_scale, config.get("output_stride", 16))
    model = build_deeplab(config["num_classes"], backbone=config["backbone"], input_size=network_size,
                          backbone_options=config.get("backbone_options") or {}, **optional)
    model.load_weights(checkpoint.weights_path)
    if network_size != input_size:
        inputs = keras.Input((*input_size, 3), name="image")
        enlarged = keras.layers.Resizing(*network_size, interpolation="bilinear", name="to_network_size")(inputs)
        logits = keras.layers.Resizing(*input_size, interpolation="bilinear", name="to_input_size")(model(enlarged))
        model = keras.Model(inputs, logits, name=f"{model.name}_at_{network_size[0]}x{network_size[1]}")
    return averaged_over_flips(model, input_size, flips) if flips else model


def averaged_over_flips(model, input_size: tuple[int, int], flips: Sequence[str]):
    """``model`` run on the image and on its flips in one batch, each answer flipped back, the class
    probabilities averaged. The result is returned as log-probabilities, so the export graph's softmax
    gives back exactly the average and its argmax the averaged vote."""
    import keras
    from keras import ops

    axes = sorted({FLIP_AXES[flip] for flip in flips})
    views = [combination for count in range(len(axes) + 1) for combination in itertools.combinations(axes, count)]

    def flipped(tensor, combination):
        for axis in combination:
            tensor = ops.flip(tensor, axis=axis)
        return tensor

    inputs = keras.Input((*input_size, 3), name="image")
    batch = ops.concatenate([flipped(inputs, combination) for combination in views], axis=0)
    probabilities = ops.split(ops.softmax(model(batch), axis=-1), len(views), axis=0)
    mean = sum(flipped(part, combination) for part, combination in zip(probabilities, views)) / len(views)
    log_mean = ops.log(ops.maximum(mean, 1e-30))  # a class no view gives any probability stays finite
    return keras.Model(inputs, log_mean, name=f"{model.name}_flip_averaged_{len(views)}")


def epochs_done(run_dir: Path) -> int:
    """Epochs the run has finished (``state.json``, written after every epoch); 0 for a new run."""
    path = run_dir / STATE_FILE
    return json.loads(path.read_text())["epochs_done"] if path.is_file() else 0


def _stage_command(stage: dict, end_epoch: int) -> str:
    """A stage cut short (by ``--max-minutes``, or a crash) before the next one began replays
    with ``--stop-after-epoch``, so the next stage resumes from the same epoch."""
    if end_epoch < stage["epochs"]:
        return f"{stage['command']} --stop-after-epoch {end_epoch}"
    return stage["command"]


def record_stage(run_dir: Path, config: dict, from_epoch: int) -> None:
    """Start a stage in ``stages.json`` unless this invocation repeats the last stage's command
    (a stage interrupted by ``--max-minutes`` and resumed unchanged is still one stage)."""
    stages = _read_stages(run_dir)
    command = train_command(config)
    if not stages or stages[-1]["command"] != command:
        stages.append({"command": command, "epochs": config["epochs"], "from_epoch": from_epoch})
        _write_stages(run_dir, stages)


def _read_stages(run_dir: Path) -> list[dict]:
    path = run_dir / STAGES_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def _write_stages(run_dir: Path, stages: list[dict]) -> None:
    (run_dir / STAGES_FILE).write_text(json.dumps(stages, indent=2) + "\n")
