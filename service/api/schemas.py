"""Response bodies of the JSON endpoints, with the examples shown at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.settings import BackendName


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
    backend: str | None = Field(None, examples=[BackendName.ONNX_CPU])
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


class UncertaintySummary(BaseModel):
    """`uncertainty=true`: how sure the model was, from normalised entropy (0 certain, 1 uniform)."""

    mean_entropy: float = Field(description="Mean normalised entropy over the image.", examples=[0.061])
    entropy_threshold: float = Field(description="Entropy above which a pixel counts as uncertain.", examples=[0.5])
    high_entropy_fraction: float = Field(description="Share of pixels above the threshold.", examples=[0.032])
    class_confidence: dict[str, float] = Field(
        description="Per class present: mean confidence (1 - entropy) of the pixels predicted as it.",
        examples=[{"background": 0.962, "polyp": 0.871}])


class RleWithUncertainty(RleResponse):
    uncertainty: UncertaintySummary | None = Field(None, description="Only with uncertainty=true.")


class PolygonRegion(BaseModel):
    area: float = Field(description="Area in pixels (holes subtracted).", examples=[48190.0])
    bbox: tuple[float, float, float, float] = Field(description="COCO [x, y, width, height].",
                                                    examples=[[212.0, 140.0, 261.0, 236.0]])
    segmentation: list[list[float]] = Field(
        description="COCO polygon form: one flat [x1, y1, x2, y2, ...] outer ring (pycocotools.mask.frPyObjects).",
        examples=[[[212.0, 140.0, 212.0, 376.0, 473.0, 376.0, 473.0, 140.0]]])
    holes: list[list[float]] = Field(description="Inner rings in the same form, to subtract from the outer ring.",
                                     examples=[[[300.0, 200.0, 310.0, 200.0, 310.0, 210.0, 300.0, 210.0]]])


class PolygonClass(BaseModel):
    id: int = Field(examples=[1])
    name: str = Field(examples=["polyp"])
    area: int = Field(description="Pixels of this class in the label map.", examples=[48211])
    regions: list[PolygonRegion]


class PolygonsResponse(BaseModel):
    """`format=polygons`: per class its regions as polygons with holes, in COCO form and as GeoJSON
    (pixel coordinates: x right, y down, (0, 0) the top-left corner of the image)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "polyp", "width": 622, "height": 529, "tolerance": 1.0, "min_area": 20.0,
        "classes": [{"id": 1, "name": "polyp", "area": 48211, "regions": [{
            "area": 48190.0, "bbox": [212.0, 140.0, 261.0, 236.0],
            "segmentation": [[212.0, 140.0, 212.0, 376.0, 473.0, 376.0, 473.0, 140.0]], "holes": []}]}],
        "geojson": {"type": "FeatureCollection", "features": [{
            "type": "Feature", "id": 1, "properties": {"class_id": 1, "name": "polyp", "area": 48190.0},
            "geometry": {"type": "MultiPolygon", "coordinates": [[[[212.0, 140.0], [473.0, 140.0], [473.0, 376.0],
                                                                   [212.0, 376.0], [212.0, 140.0]]]]}}]},
    }]})
    model: str
    width: int
    height: int
    tolerance: float = Field(description="Simplification tolerance used, in pixels (0: exact pixel edges).")
    min_area: float = Field(description="Regions and holes smaller than this (pixels) were dropped.")
    classes: list[PolygonClass]
    geojson: dict[str, Any] = Field(description="The same regions as a GeoJSON FeatureCollection, one MultiPolygon "
                                                "Feature per class.")
    uncertainty: UncertaintySummary | None = Field(None, description="Only with uncertainty=true.")


class BatchError(BaseModel):
    status: int = Field(description="The HTTP status this image alone would have got.", examples=[400])
    code: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["could not decode the image (truncated, corrupt or not an image): ..."])


class BatchEntry(BaseModel):
    index: int = Field(description="Position of the image in the request.", examples=[0])
    filename: str | None = Field(None, description="The part's file name, if it had one.", examples=["frame-1.jpg"])
    result: dict[str, Any] | None = Field(None, description="The image's answer, as /segment gives it for the "
                                                            "same format (RLE or polygons JSON).")
    error: BatchError | None = Field(None, description="Why this image failed; the others are not affected.")


class BatchResponse(BaseModel):
    """`POST /segment/batch`: one entry per image, in the order sent."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "polyp", "format": "rle", "results": [
            {"index": 0, "filename": "frame-1.jpg", "result": {
                "model": "polyp", "width": 622, "height": 529,
                "classes": [{"id": 1, "name": "polyp", "area": 48211,
                             "rle": {"size": [529, 622], "counts": "Xc83`?2N2N1O"}}]}},
            {"index": 1, "filename": "notes.txt", "error": {
                "status": 400, "code": "invalid_image",
                "message": "could not decode the image (truncated, corrupt or not an image)"}},
        ]}]})
    model: str
    format: Literal["rle", "polygons"]
    results: list[BatchEntry]
