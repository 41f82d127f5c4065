"""Assemble the model card for an export: what the run was (its config and checkpoint), what was
written (files and their hashes), how closely each export matched Keras, and the evaluation.

The schema lives in ``modelcard.card``; this module only fills it in, so it may read training's
own helpers (``network_input_size``) that the service never needs.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from modelcard.card import (
    INPUT_NAME,
    LABELS_NAME,
    NORMALISATION_FORMULA,
    PROBABILITIES_NAME,
    SCHEMA_VERSION,
    TASK,
    Exposure,
    ModelCard,
    ModelCardError,
    Resize,
    sha256_file,
    validate_card,
)
from modelcard.geometry import DEFAULT_RESTORE
from training.checkpoint import network_input_size

FROM_SCRATCH_NOTE = ("Trained from scratch (random initialisation): no pretrained weights can be "
                     "downloaded in the environment this model was trained in.")


def build_card(*, name: str, description: str, config: dict, input_size: tuple[int, int],
               files: dict[str, Path], parity: dict[str, dict], metrics: dict | None,
               checkpoint_path: Path, reproduce: str, inference_scale: float = 1.0,
               test_time_flips: Sequence[str] = ()) -> ModelCard:
    """Assemble (and validate) the card for an export.

    ``config`` is the run's ``config.json``; ``files`` maps a role ("onnx", "tflite_fp16", ...)
    to the exported file, recorded by file name plus sha256; ``metrics`` is the JSON that
    ``training.evaluate`` wrote (None when the model was not evaluated).
    """
    required = ("dataset", "classes", "palette", "backbone")
    missing = [key for key in required if key not in config]
    if missing:
        raise ModelCardError(f"run config lacks {missing}; cannot describe the model")
    if len(config["classes"]) != len(config["palette"]):
        raise ModelCardError("run config: 'classes' and 'palette' differ in length")
    height, width = input_size
    card = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "task": TASK,
        "description": description,
        "architecture": {
            "type": "deeplabv3plus",
            "backbone": config["backbone"],
            "backbone_options": config.get("backbone_options") or {},
            "output_stride": config.get("output_stride", 16),
            "aspp_rates": config.get("aspp_rates"),
            "decoder": config.get("decoder", True),
            "inference_scale": inference_scale,
            "network_input_size": list(network_input_size(input_size, inference_scale,
                                                          config.get("output_stride", 16))),
            "test_time_flips": sorted(test_time_flips),
        },
        "classes": [{"id": index, "name": class_name, "color": list(color)}
                    for index, (class_name, color) in enumerate(zip(config["classes"], config["palette"]))],
        "ignore_index": config.get("ignore_index"),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                  "height": height, "width": width, "channels": 3, "batch": "dynamic",
                  "normalisation": {"in_graph": True, "formula": NORMALISATION_FORMULA,
                                    "range": [-1, 1]},
                  "resize": Resize().model_dump(),
                  **({"exposure": Exposure(target_mean=config["exposure_target_mean"]).model_dump()}
                     if config.get("exposure_target_mean") is not None else {})},
        "outputs": {"probabilities": {"name": PROBABILITIES_NAME, "dtype": "float32", "layout": "NHWC"},
                    "labels": {"name": LABELS_NAME, "dtype": "uint8", "layout": "NHW"},
                    "restore": DEFAULT_RESTORE},
        "files": {key: value for role, path in files.items()
                  for key, value in ((role, Path(path).name), (f"{role}_sha256", sha256_file(path)))},
        "training": {
            "dataset": config["dataset"],
            "data_root": config.get("data_root"),
            "split": config.get("train_split", "train"),
            "pretrained": False,
            "note": FROM_SCRATCH_NOTE,
            "recipe": config,
            "reproduce": reproduce,
        },
        "metrics": _card_metrics(metrics),
        "export_parity": parity,
        "source_checkpoint": {"path": str(checkpoint_path), "sha256": sha256_file(checkpoint_path)},
        "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return validate_card(card, f"card {name!r}")


def _card_metrics(metrics: dict | None) -> dict | None:
    """The evaluation summary without the (large) confusion matrix, which stays in its JSON."""
    if metrics is None:
        return None
    return {key: value for key, value in metrics.items() if key != "confusion_matrix"}
