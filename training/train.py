"""``python -m training.train --config training/configs/polyp.toml``: train DeepLabv3+.

A run lives in ``<checkpoint_dir>/<run_name>/``: the resolved ``config.json``, ``last.weights.h5``
(model + optimizer, written every epoch) with ``state.json`` (epochs done) for resuming,
``best.weights.h5`` (best validation score), ``history.csv`` and ``tensorboard/``. Running the
same command again resumes where the last run stopped, so a long training survives the end of a
session; ``--max-minutes`` stops cleanly at an epoch boundary before a deadline. Rerunning with a
longer ``--epochs`` continues the run as a new stage (a warm restart of the cosine schedule);
``stages.json`` records every stage's command and the epochs it ran, for the model card.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from modelcard.card import sha256_file
from training.checkpoint import FOLDED_BATCHNORM, STATE_FILE, epochs_done, record_stage, resolve_checkpoint
from training.config import TrainConfig, parse_args
from training.datasets import class_pixel_counts, get_dataset, split_mean_brightness
from training.datasets.augment import AugmentConfig
from training.datasets.photometric import AppearanceConfig
from training.distribute import make_strategy, patch_keras_for_multiworker, worker_role
from training.fit_metrics import ForegroundDice, MeanIoU
from training.losses import class_weights_from_counts, make_loss
from training.model import build_deeplab
from training.model.blocks import freeze_batchnorm
from training.schedule import WarmupCosine


class RunState(keras.callbacks.Callback):
    """Writes ``last.weights.h5`` + ``state.json`` each epoch (resume point) and stops the run
    at an epoch boundary once ``max_minutes`` would be exceeded."""

    def __init__(self, run_dir: Path, write: bool, max_minutes: float | None):
        super().__init__()
        self.run_dir, self.write, self.max_seconds = run_dir, write, (max_minutes or 0) * 60
        self.started = time.monotonic()
        self.epoch_started = self.started

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        # Every worker must call save_weights (it is collective under MultiWorkerMirrored); only
        # the chief's run_dir is the real run directory, the others pass a scratch folder.
        self.model.save_weights(self.run_dir / "last.weights.h5")
        if self.write:
            state = {"epochs_done": epoch + 1, "logs": {k: float(v) for k, v in (logs or {}).items()}}
            (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        elapsed = time.monotonic() - self.started
        if self.max_seconds and elapsed + (time.monotonic() - self.epoch_started) > self.max_seconds:
            print(f"\nstopping after epoch {epoch + 1}: --max-minutes budget reached", flush=True)
            self.model.stop_training = True


class EpochSeconds(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (training + validation wall time) to each epoch's logs, so
    ``history.csv`` tells throughput and ``training.budget`` can size a run to a deadline."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.monotonic() - self.started


def weights_digest(model: keras.Model) -> str:
    """sha256 over all weights: equal on every worker of one synchronous run."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.asarray(keras.ops.convert_to_numpy(weight), dtype=np.float32).tobytes())
    return digest.hexdigest()


def _resolve_class_info(config: TrainConfig, dataset, run_dir: Path) -> dict:
    """Class names, palette and (for weighted losses) training pixel counts, cached per run."""
    cache = run_dir / "class_counts.json"
    info = {"classes": list(dataset.classes), "palette": [list(c) for c in dataset.palette],
            "ignore_index": dataset.ignore_index, "num_classes": dataset.num_classes}
    if config.loss != "dice_focal":
        if cache.is_file():
            counts = json.loads(cache.read_text())
        else:
            counts = [int(c) for c in class_pixel_counts(dataset)]
            cache.write_text(json.dumps(counts))
        info["class_pixel_counts"] = counts
        info["class_weights"] = class_weights_from_counts(counts).tolist()
    return info


def _resolve_exposure_target(config: TrainConfig, dataset, run_dir: Path) -> dict:
    """The training images' mean brightness when the run normalises exposure, cached per run."""
    if not config.normalise_exposure:
        return {}
    cache = run_dir / "exposure.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    target = {"exposure_target_mean": round(split_mean_brightness(dataset), 2)}
    cache.write_text(json.dumps(target))
    return target


def _best_so_far(run_dir: Path, monitor: str) -> float | None:
    """Best ``monitor`` value in earlier epochs of this run, so a resumed run keeps a better
    ``best.weights.h5`` from before the interruption instead of overwriting it."""
    history = run_dir / "history.csv"
    if not history.is_file():
        return None
    with history.open() as rows:
        values = [row.get(monitor) for row in csv.DictReader(rows)]
    scores = [float(v) for v in values if v not in (None, "", "NA")]
    return max(scores) if scores else None


def _make_optimizer(config: TrainConfig, total_steps: int, warmup_steps: int):
    schedule = WarmupCosine(total_steps, config.learning_rate, config.final_learning_rate, warmup_steps)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=config.weight_decay)


def _input_pipelines(config: TrainConfig, train_set, val_set, global_batch: int,
                     augmentation: AugmentConfig, first_batch: int):
    """(training stream, validation pass): tf.data where tf.distribute may shard it, a Keras
    PyDataset on other backends (a GPU machine with JAX but no TensorFlow)."""
    if keras.backend.backend() == "tensorflow":
        from training.datasets import make_pipeline

        train_data = make_pipeline(train_set, config.crop_size, global_batch, augment=True, shuffle=True,
                                   repeat=True, seed=config.seed, max_side=config.max_side,
                                   cache=config.cache, augment_config=augmentation)
        val_data = make_pipeline(val_set, config.crop_size, global_batch, augment=False, shuffle=False,
                                 repeat=True, seed=config.seed, max_side=config.max_side, cache=config.cache,
                                 augment_config=augmentation)
        return train_data, val_data
    from training.datasets import SegmentationBatches

    train_data = SegmentationBatches(train_set, config.crop_size, global_batch, augment=True, seed=config.seed,
                                     max_side=config.max_side, cache=config.cache, augment_config=augmentation,
                                     first_batch=first_batch, workers=config.loader_workers,
                                     processes=config.loader_processes)
    val_data = SegmentationBatches(val_set, config.crop_size, global_batch, augment=False,
                                   max_side=config.max_side, cache=config.cache, augment_config=augmentation,
                                   workers=config.loader_workers,
                                   processes=config.loader_processes)
    return train_data, val_data


def train(config: TrainConfig) -> dict:
    """Run (or resume) training; returns the final epoch's logs plus run facts."""
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(config.strategy)
    task_index, is_chief = worker_role()
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    train_set = get_dataset(config.dataset, root=config.data_root, split=config.train_split)
    val_set = get_dataset(config.dataset, root=config.data_root, split=config.val_split)
    info = {**_resolve_class_info(config, train_set, run_dir), **_resolve_exposure_target(config, train_set, run_dir)}
    # Fine-tuning starts from another run's weights; its saved optimizer state is not loaded (the
    # model is not compiled yet), so this run gets a fresh optimizer and schedule.
    parent = resolve_checkpoint(config.init_weights) if config.init_weights else None
    init_weights = parent.weights_path if parent else None
    if init_weights:
        if init_weights.parent.resolve() == run_dir.resolve():
            raise ValueError(f"--init-weights {config.init_weights} is this run itself; "
                             "fine-tune into a new --run-name")
        info["init_weights_sha256"] = sha256_file(init_weights)
        if parent.config.get("batchnorm") == FOLDED_BATCHNORM and not config.freeze_batchnorm:
            raise ValueError(f"--init-weights {config.init_weights} was recovered from ONNX with its batch norm "
                             "folded (training.recover): fine-tune it with --freeze-batchnorm true")
    if is_chief:
        (run_dir / "config.json").write_text(json.dumps({**config.to_dict(), **info}, indent=2))

    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = config.steps_per_epoch or math.ceil(len(train_set.samples) / global_batch)
    validation_steps = config.validation_steps or math.ceil(len(val_set.samples) / global_batch)
    augmentation = AugmentConfig(scale_range=tuple(config.scale_range),
                                 max_rotation_degrees=config.max_rotation_degrees,
                                 vertical_flip=config.vertical_flip, color_jitter=config.color_jitter,
                                 appearance=AppearanceConfig(**config.appearance),
                                 exposure_target_mean=info.get("exposure_target_mean"))
    initial_epoch = epochs_done(run_dir) if (run_dir / "last.weights.h5").is_file() else 0
    train_data, val_data = _input_pipelines(config, train_set, val_set, global_batch, augmentation,
                                            first_batch=initial_epoch * steps_per_epoch)

    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    with strategy.scope():
        model = build_deeplab(
            info["num_classes"], backbone=config.backbone, input_size=(config.crop_size, config.crop_size),
            output_stride=config.output_stride, aspp_rates=config.aspp_rates,
            backbone_options=config.backbone_options, dropout=config.dropout,
            sync_batchnorm=config.strategy != "none", gradient_checkpointing=config.gradient_checkpointing,
            bn_momentum=config.bn_momentum,
        )
        if init_weights:
            model.load_weights(init_weights)
        if config.freeze_batchnorm:
            freeze_batchnorm(model)
        model.compile(
            optimizer=_make_optimizer(config, total_steps, warmup_steps),
            loss=make_loss(config.loss, info.get("class_weights")),
            metrics=[MeanIoU(info["num_classes"]), ForegroundDice(info["num_classes"])],
        )
    if config.strategy == "multiworker":
        patch_keras_for_multiworker(model, strategy)

    if initial_epoch:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(run_dir / "last.weights.h5")
        print(f"resuming {run_dir} after epoch {initial_epoch}", flush=True)
    if initial_epoch >= config.last_epoch:
        print(f"{run_dir} already trained for {initial_epoch} epochs", flush=True)
        return {"epochs_done": initial_epoch}
    if is_chief:
        record_stage(run_dir, config.to_dict(), initial_epoch)

    # Keras 3.15's evaluate() deadlocks in its collectives under MultiWorkerMirroredStrategy, so
    # multi-worker runs validate afterwards (python -m training.evaluate) and keep the best
    # checkpoint by the training score.
    validate = config.strategy != "multiworker"
    monitor = config.monitor or ("val_" if validate else "") + ("dice" if info["num_classes"] == 2 else "miou")
    write_dir = run_dir if is_chief else Path(tempfile.mkdtemp())
    callbacks = [
        EpochSeconds(),  # first: the callbacks after it see (and CSVLogger writes) its column
        keras.callbacks.ModelCheckpoint(write_dir / "best.weights.h5", monitor=monitor, mode="max",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=_best_so_far(run_dir, monitor)),
        keras.callbacks.CSVLogger(str(write_dir / "history.csv"), append=True),
        RunState(write_dir, write=is_chief, max_minutes=config.max_minutes),
    ]
    if keras.backend.backend() == "tensorflow":  # Keras writes TensorBoard logs with tf.summary
        callbacks.append(keras.callbacks.TensorBoard(str(write_dir / "tensorboard"), update_freq="epoch"))
    history = model.fit(
        train_data, epochs=config.last_epoch, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
        validation_data=val_data if validate else None, validation_steps=validation_steps if validate else None,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    summary = {
        "task_index": task_index,
        "is_chief": is_chief,
        "replicas": strategy.num_replicas_in_sync,
        "steps_run": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "weights_sha256": weights_digest(model),
        "final_logs": {k: float(v[-1]) for k, v in history.history.items()},
    }
    workers_dir = run_dir / "workers"
    workers_dir.mkdir(exist_ok=True)
    (workers_dir / f"worker-{task_index}.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> None:
    summary = train(parse_args(argv))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
