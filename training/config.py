"""The training configuration: one dataclass, read from a TOML file and overridden by flags.

The resolved config is written next to the checkpoints (``config.json``) so that export,
evaluation and the model card rebuild exactly the trained network.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("none", "mirrored", "multiworker")
# When to stop, not what to train: left out of a stage's command (its record says where it stopped).
STOP_CONDITIONS = ("max_minutes", "stop_after_epoch")
# How fast batches are made, not which: a run's batches are the same whatever these are.
LOADER_SETTINGS = ("loader_workers", "loader_processes")
# Stated even at their default value: they tell a run's stages apart.
ALWAYS_STATED = ("dataset", "epochs")
OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Everything a run needs; field names double as ``--kebab-case`` flags."""

    run_name: str = "run"
    dataset: str = "kvasir"
    data_root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    backbone: str = "mobilenetv2"
    backbone_options: dict = field(default_factory=dict)
    output_stride: int = 16
    aspp_rates: list[int] | None = None
    dropout: float = 0.1
    bn_momentum: float = 0.9
    crop_size: int = 256
    max_side: int | None = 512
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    max_rotation_degrees: float = 15.0
    vertical_flip: bool = False
    color_jitter: float = 0.0
    # training.datasets.photometric.AppearanceConfig fields, e.g. { gamma = 0.4, jpeg = 0.3 }.
    appearance: dict = field(default_factory=dict)
    # Bring every image's mean brightness to the training split's (modelcard.exposure), in training
    # and, through the card's input.exposure, wherever the exported model is served.
    normalise_exposure: bool = False
    cache: bool = True
    # Off TensorFlow (the JAX backend on a GPU host): how many loaders make batches ahead (0: up
    # to 8), and whether they are processes. Augmentation holds the GIL for most of its ~20 ms per
    # example, so threads add little past 2; processes keep a fast GPU fed.
    loader_workers: int = 0
    loader_processes: bool = False
    batch_size: int = 8
    epochs: int = 30
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    loss: str = "dice_focal"
    optimizer: str = "sgd"
    learning_rate: float = 0.007
    final_learning_rate: float = 0.0001
    warmup_epochs: float = 1.0
    weight_decay: float = 4e-5
    monitor: str | None = None
    mixed_precision: bool = False
    gradient_checkpointing: bool = False
    strategy: str = "none"
    checkpoint_dir: str = "checkpoints"
    max_minutes: float | None = None
    stop_after_epoch: int | None = None
    seed: int = 0
    # Fine-tuning: a new run that starts from another run's model weights (fresh optimizer and
    # schedule), e.g. to continue at a larger crop size with its own validation scores.
    init_weights: str | None = None
    # Batch norm in inference mode throughout (statistics and affine kept, convolutions trained):
    # needed to fine-tune a checkpoint recovered from ONNX (training.recover), whose BN is folded.
    freeze_batchnorm: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 64 <= self.crop_size <= 1024:
            raise ValueError(f"crop_size must be in [64, 1024], got {self.crop_size}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be >= 1")
        if self.stop_after_epoch is not None and not 1 <= self.stop_after_epoch <= self.epochs:
            raise ValueError(f"stop_after_epoch must be in [1, epochs], got {self.stop_after_epoch}")

    @property
    def last_epoch(self) -> int:
        """Where this invocation stops; the learning-rate schedule still spans ``epochs``."""
        return self.stop_after_epoch or self.epochs

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoint_dir) / self.run_name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def train_command(config: dict) -> str:
    """The ``training.train`` command that reproduces a run: every setting that differs from
    ``TrainConfig``'s defaults, as a flag (so it does not depend on a TOML file staying the same)."""
    words = ["python", "-m", "training.train"]
    for key, default in TrainConfig().to_dict().items():
        value = config.get(key, default)
        if key in STOP_CONDITIONS + LOADER_SETTINGS or (value == default and key not in ALWAYS_STATED):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value, separators=(",", ":"))
        else:
            text = "none" if value is None else str(value)
        words += [f"--{key.replace('_', '-')}", text]
    return shlex.join(words)


def _flag_type(annotation):
    """argparse type for a dataclass field annotation; lists and dicts are given as JSON."""
    text = str(annotation)
    if "list" in text or "dict" in text:
        return json.loads
    if "bool" in text:
        return lambda value: value.lower() in ("1", "true", "yes", "on")
    for kind in (int, float):
        if kind.__name__ in text:
            return lambda value, kind=kind: None if value.lower() == "none" else kind(value)
    return str


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """``--config file.toml`` first, then any ``--field value`` flag overrides it."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML file with TrainConfig fields")
    hints = typing.get_type_hints(TrainConfig)
    for item in dataclasses.fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        if hints[item.name] is bool:
            parser.add_argument(flag, dest=item.name, nargs="?", const=True, type=_flag_type(bool),
                                default=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, dest=item.name, type=_flag_type(hints[item.name]),
                                default=argparse.SUPPRESS)
    args = vars(parser.parse_args(argv))
    values = {}
    config_path = args.pop("config")
    if config_path is not None:
        if not config_path.is_file():
            parser.error(f"config file not found: {config_path}")
        values = tomllib.loads(config_path.read_text())
        unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            parser.error(f"{config_path}: unknown keys {sorted(unknown)}")
    values.update(args)
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
