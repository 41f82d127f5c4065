"""The model card: the one contract between training, ``build_engine.py`` and the service.

Every exported ``engines/<name>.onnx`` has a sibling ``engines/<name>.json`` (schema in
``docs/MODEL_CARD.md``). This module owns the schema: ``training.card_builder`` writes cards through the same
pydantic model that ``load_card`` validates them with, so a card the exporter writes is always one
the readers accept. Plain Python + pydantic: no TensorFlow, so the service can import it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from modelcard.geometry import PAD_VALUE, RestoreMode

SCHEMA_VERSION = 1
TASK = "semantic-segmentation"
INPUT_NAME = "image"
PROBABILITIES_NAME = "probabilities"
INT8_ROLE = "onnx_int8"  # the INT8 variant's key in `files`, `quantization` and `export_parity`
Precision = Literal["fp32", "int8"]
LABELS_NAME = "labels"
NORMALISATION_FORMULA = "x / 127.5 - 1"


class ModelCardError(ValueError):
    """A card that is missing, unreadable or breaks the schema; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """Sections that may grow extra keys (more files, more parity runtimes, more metrics)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ClassEntry(_Strict):
    id: int = Field(ge=0)
    name: str = Field(min_length=1)
    color: tuple[int, int, int]

    @model_validator(mode="after")
    def _color_is_rgb(self):
        if not all(0 <= channel <= 255 for channel in self.color):
            raise ValueError(f"color {list(self.color)} of class {self.name!r} is not RGB 0..255")
        return self


class Normalisation(_Strict):
    in_graph: Literal[True]
    formula: Literal["x / 127.5 - 1"]
    range: tuple[float, float]


class Resize(_Strict):
    """How an image is fitted into the input: scaled by one factor with this interpolation (aspect
    ratio kept), centred, the rest filled with ``pad_value`` (``modelcard.geometry.letterbox``)."""

    mode: Literal["letterbox"] = "letterbox"
    pad_value: int = Field(PAD_VALUE, ge=0, le=255)
    interpolation: Literal["bilinear"] = "bilinear"


class Exposure(_Strict):
    """Every image's mean brightness brought to the training images' by one gamma, before the
    network sees it (``modelcard.exposure``); the image endpoints do it, as evaluation did."""

    method: Literal["gamma-to-mean"] = "gamma-to-mean"
    target_mean: float = Field(gt=0, lt=255)


class InputSpec(_Strict):
    name: str = Field(min_length=1)
    dtype: Literal["uint8"]
    layout: Literal["NHWC"]
    color: Literal["RGB"]
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[3]
    batch: Literal["dynamic"]
    normalisation: Normalisation
    resize: Resize = Resize()
    exposure: Exposure | None = None


class OutputSpec(_Strict):
    name: str = Field(min_length=1)
    dtype: str
    layout: str


class Outputs(_Strict):
    probabilities: OutputSpec
    labels: OutputSpec
    # How the answer goes back to the image's size (``modelcard.geometry.restore``): what the card's
    # metrics were measured with and what the service serves. Cards from before the field was
    # written were evaluated through the bilinear probabilities, hence the default.
    restore: RestoreMode = "probabilities-bilinear"


class Architecture(_Open):
    type: Literal["deeplabv3plus"]
    backbone: str
    backbone_options: dict[str, Any]
    output_stride: int
    aspp_rates: list[int] | None
    decoder: bool
    # The graph enlarges its input by this factor before the network and shrinks the logits back
    # (cards written before this field existed ran the network at the input size).
    inference_scale: float = Field(1.0, gt=0)
    network_input_size: tuple[int, int] | None = None
    # Flips the graph also runs and averages over (test-time augmentation; 2^len passes per image).
    test_time_flips: list[Literal["horizontal", "vertical"]] = []


class Files(_Open):
    onnx: str = Field(min_length=1)
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The INT8 variant (training/quantize.py), when one was made: served with `--precision int8`.
    onnx_int8: str | None = Field(None, min_length=1)
    onnx_int8_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _int8_has_its_hash(self):
        if (self.onnx_int8 is None) != (self.onnx_int8_sha256 is None):
            raise ValueError("onnx_int8 and onnx_int8_sha256 go together")
        return self


class Quantization(_Open):
    """How a quantized variant was made (training/quantize.py writes it; nothing reads it to run)."""

    tool: str
    format: str
    weights: str
    activations: str
    calibration: str
    calibration_images: int = Field(gt=0)
    calibration_split: str
    kept_fp32: list[str]
    parity_reference: str
    command: str
    # Weights kept to 7 bits, so x86 CPUs without VNNI do not saturate (training/quantize.py). Cards written
    # before the field existed hold full 8-bit weights: False.
    reduce_range: bool = False


class TrainingInfo(_Open):
    dataset: str
    data_root: str | None
    split: str
    pretrained: bool
    note: str | None = None
    recipe: dict[str, Any]
    reproduce: str


class Metrics(_Open):
    split: str
    mean_iou: float = Field(ge=0, le=1)
    dice: float = Field(ge=0, le=1)
    pixel_accuracy: float = Field(ge=0, le=1)
    per_class_iou: dict[str, float | None]


class ParityRecord(_Open):
    """An export's measured agreement with its reference, as the card records it."""

    max_abs_prob_diff: float = Field(ge=0)
    label_agreement: float = Field(ge=0, le=1)
    images: int = Field(gt=0)


class CrfChoice(_Open):
    """The dense-CRF preset measured best for this model (``benchmarks.crf_quality --record``); the service
    starts this model's ``crf=true`` refinements from it unless its operator set ``--crf.preset``."""

    preset: str = Field(min_length=1)
    metric: Literal["dice", "mean_iou"]
    split: str
    images: int = Field(gt=0)
    scores: dict[str, float]  # the metric with no CRF and with each preset measured
    command: str


class SourceCheckpoint(_Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelCard(_Open):
    """A validated card. ``metrics`` is null until the model was evaluated on its val split."""

    schema_version: Literal[1]
    name: str = Field(min_length=1)
    task: Literal["semantic-segmentation"]
    description: str
    architecture: Architecture
    classes: list[ClassEntry] = Field(min_length=1)
    ignore_index: int | None
    input: InputSpec
    outputs: Outputs
    files: Files
    training: TrainingInfo
    metrics: Metrics | None
    export_parity: dict[str, ParityRecord]
    quantization: dict[str, Quantization] = {}
    crf: CrfChoice | None = None
    source_checkpoint: SourceCheckpoint
    exported_at: str

    _path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _class_ids_are_positions(self):
        for position, entry in enumerate(self.classes):
            if entry.id != position:
                raise ValueError(f"classes[{position}].id is {entry.id}, must equal its position")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [entry.name for entry in self.classes]

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return [entry.color for entry in self.classes]

    @property
    def crf_preset(self) -> str | None:
        """The CRF preset measured best for this model, if the card records one."""
        return self.crf.preset if self.crf is not None else None

    @property
    def exposure_target_mean(self) -> float | None:
        """The mean brightness images are normalised to before the network, if the card asks."""
        return self.input.exposure.target_mean if self.input.exposure is not None else None

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the graph expects."""
        return self.input.height, self.input.width

    def to_json(self) -> dict:
        """The card as its file has it: fields an older card lacks are read with their defaults
        but not added when the card is passed on (API, engine sidecar, rewrite)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def path(self) -> Path | None:
        """The file this card was loaded from (None for a card built in memory)."""
        return self._path

    @property
    def onnx_path(self) -> Path:
        """The ONNX file, resolved next to the card (file names in a card are relative to it)."""
        return self.onnx_file("fp32")

    @property
    def model_files(self) -> list[Path]:
        """Every graph file the card names, next to it: the FP32 one, and the INT8 variant when there is one."""
        variants = ["fp32", "int8"] if self.files.onnx_int8 is not None else ["fp32"]
        return [self.onnx_file(precision) for precision in variants]

    def onnx_file(self, precision: Precision) -> Path:
        """The ONNX file of `precision`, next to the card; a card without an INT8 variant says so."""
        if self._path is None:
            raise ModelCardError(f"card {self.name!r} was not loaded from a file; no ONNX path")
        if precision == "fp32":
            return self._path.parent / self.files.onnx
        if self.files.onnx_int8 is None:
            raise ModelCardError(f"{self._path}: no INT8 variant (files.{INT8_ROLE}); "
                                 f"make one with python -m training.quantize --card {self._path}")
        return self._path.parent / self.files.onnx_int8


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<card>"
        if item["type"] == "missing":
            lines.append(f"{source}: missing required field '{field}'")
        else:
            lines.append(f"{source}: field '{field}': {item['msg']}")
    return "\n".join(lines)


def validate_card(data: dict, source: str = "<model card>") -> ModelCard:
    """Validate a card dict; ``ModelCardError`` lists every bad field, prefixed by ``source``."""
    try:
        return ModelCard.model_validate(data)
    except ValidationError as error:
        raise ModelCardError(_describe(error, source)) from None


def load_card(path: str | Path, verify_files: bool = False) -> ModelCard:
    """Read and validate ``path``. With ``verify_files`` also check the ONNX file exists next to
    the card and matches ``files.onnx_sha256`` (what ``build_engine.py`` wants before a build)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelCardError(f"{path}: model card not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelCardError(f"{path}: not a readable JSON model card ({error})") from None
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}: a model card must be a JSON object")
    card = validate_card(data, str(path))
    card._path = path
    if verify_files:
        verify_onnx(card, "fp32")
    return card


def verify_onnx(card: ModelCard, precision: Precision) -> Path:
    """The card's ONNX file of `precision`, checked to exist and to match its recorded sha256."""
    onnx_path = card.onnx_file(precision)
    role = "onnx" if precision == "fp32" else INT8_ROLE
    if not onnx_path.is_file():
        raise ModelCardError(f"{card.path}: files.{role} points to {onnx_path}, which does not exist")
    if sha256_file(onnx_path) != getattr(card.files, f"{role}_sha256"):
        raise ModelCardError(f"{card.path}: {onnx_path} does not match files.{role}_sha256")
    return onnx_path


def write_card(card: ModelCard, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(card.to_json(), indent=2) + "\n")
    return path
