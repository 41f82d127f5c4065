"""Response bodies of the JSON endpoints, with the examples shown at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RleMask(BaseModel):
    size: tuple[int, int] = Field(description="[height, width] of the mask.", examples=[[529, 622]])
    counts: str = Field(description="COCO compressed RLE (column-major), as pycocotools.mask.encode writes it.",
                        examples=["Xc83`?2N2N1O1O1N2O0O2N1O1O1N2N2N1O0010O"])


class RleClass(BaseModel):
    id: int = Field(description="Class id (the PNG pixel value).", examples=[1])
    name: str = Field(examples=["polyp"])
    area: int = Field(description="Pixels of this class.", examples=[48211])
    rle: RleMask


class RleResponse(BaseModel):
    """`format=rle`: one COCO RLE per class present, at the original image size."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "polyp", "width": 622, "height": 529,
        "classes": [{"id": 0, "name": "background", "area": 280627, "rle": {"size": [529, 622], "counts": "0S`:"}},
                    {"id": 1, "name": "polyp", "area": 48211, "rle": {"size": [529, 622], "counts": "Xc83`?2N2N1O"}}],
    }]})
    model: str
    width: int
    height: int
    classes: list[RleClass]


class BatchLimits(BaseModel):
    max_batch_size: int = Field(examples=[1])
    max_delay_ms: float = Field(examples=[0.0])
    max_queue_size: int = Field(examples=[32])
    request_timeout_s: float = Field(examples=[30.0])


class VersionState(BaseModel):
    version: int = Field(examples=[2])
    status: Literal["loading", "ready", "failed"] = Field(examples=["ready"])
    error: str | None = Field(None, description="Why its latest load failed (an older copy may still serve).",
                              examples=[None])


class ModelSummary(BaseModel):
    name: str = Field(examples=["polyp"])
    status: Literal["loading", "ready", "failed"] = Field(examples=["ready"])
    error: str | None = Field(None, description="Why the model, or its newest version, failed to load.",
                              examples=[None])
    version: int | None = Field(None, description="The version requests without ?version= get.", examples=[2])
    versions: list[VersionState] = Field(default_factory=list, description="Versions serving or tried, newest first.")
    description: str | None = Field(None, examples=["Polyp segmentation in colonoscopy frames (Kvasir-SEG)"])
    classes: list[str] = Field(default_factory=list, examples=[["background", "polyp"]])
    input_size: tuple[int, int] | None = Field(None, description="[height, width] the model runs at.",
                                               examples=[[512, 512]])
    backend: str | None = Field(None, examples=["onnx-cpu"])
    precision: str | None = Field(None, examples=["fp32"])
    batching: BatchLimits | None = None


class ModelList(BaseModel):
    default: str | None = Field(description="The model used when a request names none.", examples=["polyp"])
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    card: dict[str, Any] | None = Field(None, description="The model card as written (docs/MODEL_CARD.md).")


class Health(BaseModel):
    status: Literal["ok", "unhealthy"] = Field(examples=["ok"])
    detail: str | None = Field(None, examples=[None])


class ModelReadiness(BaseModel):
    status: Literal["loading", "ready", "failed"]
    error: str | None = None
    version: int | None = Field(None, description="The version serving (the newest ready one).")


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "problem": None, "models": {"polyp": {"status": "ready", "error": None}}},
        {"status": "failed", "problem": None,
         "models": {"camvid": {"status": "failed", "error": "CardError: camvid: ONNX file engines/camvid.onnx ..."}}},
    ]})
    status: Literal["ready", "loading", "failed", "draining"]
    problem: str | None = Field(
        None, description="A failure that is not one model's (no models directory, CRF workers down).")
    models: dict[str, ModelReadiness]
