"""An Open Inference Protocol request run through the segmentation pipeline, and a model as that protocol shows it.

The input `image` is either the raw model tensor, UINT8 `[N, H, W, 3]` at the card's input size
(it goes straight to the model's batcher), or N encoded images as BYTES (each goes through the
same decode -> letterbox -> batch -> map-back path as `/segment`). The datatype says which; the
optional input parameter `image_format` ("raw" or "encoded") states it explicitly, as clients of
Triton's pre-processing ensembles do, and must agree. In a JSON body BYTES elements are strings,
so encoded images (and `png` outputs) travel as base64 there; binary data carries them as they are.

Outputs: `labels` UINT8 `[N, H, W]` (the original size for encoded input: every image in the
request must then share one size), `probabilities` FP32 `[N, H, W, C]` (always the model's own
resolution: for encoded input, the letterboxed model input), `png` and `rle` BYTES `[N]` (the
`/segment` bodies: indexed PNG, COCO RLE JSON).
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np

from modelcard.card import ModelCard
from service.crf import CrfPool
from service.formats import OutputOptions, Prediction, encode
from service.imaging import decode_base64_image
from service.oip import BYTES, InferRequest, InputTensor, OutputTensor, bad_request
from service.registry import Model, ReadyModel
from service.segmentation import label_image
from service.settings import BackendName
from service.telemetry import Timings

OUTPUTS = ("labels", "probabilities", "rle", "png")
PLATFORMS = {BackendName.ONNX_CPU: "onnxruntime_onnx", BackendName.ONNX_CUDA: "onnxruntime_onnx",
             BackendName.TENSORRT: "tensorrt_plan"}


def model_metadata(model: Model, card: ModelCard) -> dict:
    """The protocol's model metadata: versions, platform and the tensors `infer` takes and gives."""
    height, width = card.input_size
    latest = model.latest
    return {
        "name": model.name,
        "versions": [str(version) for version, _, _ in model.versions()],
        "platform": PLATFORMS[latest.backend.name] if latest else "onnxruntime_onnx",
        "inputs": [{"name": card.input.name, "datatype": "UINT8", "shape": [-1, height, width, 3]}],
        "outputs": [
            {"name": "labels", "datatype": "UINT8", "shape": [-1, height, width]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, height, width, card.num_classes]},
            {"name": "rle", "datatype": BYTES, "shape": [-1]},
            {"name": "png", "datatype": BYTES, "shape": [-1]},
        ],
    }


async def infer(model: ReadyModel, request: InferRequest, *, crf_pool: CrfPool, max_image_pixels: int,
                timings: Timings) -> list[OutputTensor]:
    """Run every image of `request` through `model` and build the outputs it asked for, in its order."""
    card = model.card
    image = _image_input(request, card, model.policy.max_queue_size)
    wanted = request.outputs or dict.fromkeys(OUTPUTS)
    unknown = sorted(set(wanted) - set(OUTPUTS))
    if unknown:
        raise bad_request(f"unknown output(s) {unknown}; this model has {list(OUTPUTS)}")
    binary = {name: request.binary_default if as_binary is None else as_binary for name, as_binary in wanted.items()}
    want_probabilities = "probabilities" in wanted
    if image.datatype == BYTES:
        data = image.data if image.binary else [decode_base64_image(element) for element in image.data]
        results = await asyncio.gather(*(label_image(
            model, element, refine=False, want_probabilities=want_probabilities, keep_image=False,
            crf_pool=crf_pool, max_image_pixels=max_image_pixels, timings=timings) for element in data))
        with timings.measure("encode"):
            masks = await asyncio.to_thread(lambda: [r.restored(card)[0] for r in results])
        probabilities = [r.output.probabilities for r in results]
    else:
        batch = await asyncio.gather(*(model.batcher.submit(np.ascontiguousarray(pixels), want_probabilities)
                                       for pixels in image.data))
        timings.record("queue", max(output.queue_s for output in batch))
        timings.record("infer", max(output.infer_s for output in batch))
        masks = [output.labels for output in batch]
        probabilities = [output.probabilities for output in batch]
    with timings.measure("encode"):
        return await asyncio.to_thread(_outputs, binary, masks, probabilities, card)


def _image_input(request: InferRequest, card: ModelCard, max_images: int) -> InputTensor:
    """The one input, checked against the card: raw UINT8 [N, H, W, 3] at its size, or BYTES [N]."""
    names = [tensor.name for tensor in request.inputs]
    if names != [card.input.name]:
        raise bad_request(f"the model takes one input, {card.input.name!r}; the request has {names}")
    image = request.inputs[0]
    implied = "encoded" if image.datatype == BYTES else "raw"
    stated = image.parameters.get("image_format", implied)
    if stated not in ("raw", "encoded"):
        raise bad_request(f"input {image.name!r}: image_format {stated!r} is neither 'raw' nor 'encoded'")
    if stated != implied:
        needed = "BYTES" if stated == "encoded" else "UINT8"
        raise bad_request(f"input {image.name!r}: image_format {stated!r} needs datatype {needed}, "
                          f"not {image.datatype}")
    count = len(image.data) if image.datatype == BYTES else (image.shape[0] if image.shape else 0)
    if not 1 <= count <= max_images:
        raise bad_request(f"input {image.name!r}: {count} images; a request takes 1 to {max_images}")
    expected = (count, *card.input_size, 3)
    if image.datatype != BYTES and (image.datatype != "UINT8" or image.shape != expected):
        raise bad_request(f"input {image.name!r}: a raw tensor must be UINT8 {list(expected)} (the model's "
                          f"input size), not {image.datatype} {list(image.shape)}; send encoded images as BYTES")
    return image


def _outputs(binary: dict[str, bool], masks: list[np.ndarray], probabilities: list, card: ModelCard
             ) -> list[OutputTensor]:
    outputs = []
    for name, as_binary in binary.items():
        if name == "labels":
            if len({mask.shape for mask in masks}) > 1:
                raise bad_request("the images differ in size, so their labels are no one tensor; ask for 'png' or "
                                  "'rle', or send them in separate requests")
            outputs.append(OutputTensor(name, "UINT8", (len(masks), *masks[0].shape), np.stack(masks), as_binary))
        elif name == "probabilities":
            stacked = np.stack(probabilities)
            outputs.append(OutputTensor(name, "FP32", stacked.shape, stacked, as_binary))
        else:  # png, rle: the /segment bodies of that format
            bodies = [encode(Prediction(mask, None, None), card, OutputOptions(name)).body for mask in masks]
            if not as_binary:
                bodies = [base64.b64encode(body).decode() if name == "png" else body.decode() for body in bodies]
            outputs.append(OutputTensor(name, BYTES, (len(masks),), bodies, as_binary))
    return outputs
