"""The Open Inference Protocol (KServe v2) API of a real server, called by Triton's and KServe's own clients."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.service import ServiceProcess, run_onnx

tritonclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (dev dependency)")
kserve = pytest.importorskip("kserve", reason="kserve (dev dependency)")
RequestedOutput = pytest.importorskip("kserve.protocol.infer_type").RequestedOutput


@pytest.fixture(scope="module")
def server(tiny_cards, tmp_path_factory):
    engines = tiny_cards["polyp"].path.parent
    server = ServiceProcess(engines, tmp_path_factory.mktemp("v2") / "service.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def triton(server):
    client = tritonclient.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    """A 150x200 photo-like JPEG: not the model's size and not square, so the mapping back shows."""
    rng = np.random.default_rng(0)
    pixels = (np.linspace(0, 255, 200)[None, :, None] * rng.uniform(0.5, 1, (150, 1, 3))).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def segment(server, data: bytes, **params) -> httpx.Response:
    response = httpx.post(server.url + "/segment", params={"model": "polyp", **params}, content=data,
                          headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert response.status_code == 200, response.text
    return response


def canvases(card, count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (count, *card.input_size, 3), dtype=np.uint8)


def onnx_probabilities(card, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    return session.run([card.outputs.probabilities.name], {card.input.name: images})[0]


def test_health_and_metadata_through_tritonclient(triton, tiny_cards):
    polyp = tiny_cards["polyp"]
    assert triton.is_server_live() and triton.is_server_ready()
    server = triton.get_server_metadata()
    assert {"binary_tensor_data", "model_repository"} <= set(server["extensions"])
    metadata = triton.get_model_metadata("polyp")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, *polyp.input_size, 3]}]
    assert {o["name"]: o["shape"] for o in metadata["outputs"]}["probabilities"] == [-1, *polyp.input_size, 2]
    assert triton.get_model_metadata("polyp", "1") == metadata
    assert triton.is_model_ready("polyp") and triton.is_model_ready("polyp", "1")
    assert not triton.is_model_ready("polyp", "7") and not triton.is_model_ready("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_raw_tensors_through_tritonclient_match_the_onnx_file(triton, tiny_cards, binary):
    polyp = tiny_cards["polyp"]
    images = canvases(polyp, 2)
    tensor = tritonclient.InferInput("image", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images, binary_data=binary)
    outputs = [tritonclient.InferRequestedOutput(name, binary_data=binary) for name in ("labels", "probabilities")]
    result = triton.infer("polyp", [tensor], outputs=outputs, request_id="r1")
    labels, probabilities = result.as_numpy("labels"), result.as_numpy("probabilities")
    assert labels.dtype == np.uint8 and labels.shape == (2, *polyp.input_size)
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, *polyp.input_size, 2)
    for index in range(2):
        np.testing.assert_array_equal(labels[index], run_onnx(polyp, images[index]))
    np.testing.assert_allclose(probabilities, onnx_probabilities(polyp, images), atol=1e-5)
    assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "1"


def test_jpeg_bytes_through_tritonclient_equal_segment(triton, server, jpeg):
    tensor = tritonclient.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([jpeg, jpeg], dtype=object), binary_data=True)
    result = triton.infer("polyp", [tensor], outputs=[
        tritonclient.InferRequestedOutput("labels"), tritonclient.InferRequestedOutput("png"),
        tritonclient.InferRequestedOutput("rle", binary_data=False)])
    png = segment(server, jpeg).content
    expected = np.asarray(Image.open(io.BytesIO(png)))
    labels = result.as_numpy("labels")
    assert labels.shape == (2, 150, 200)
    np.testing.assert_array_equal(labels[0], expected)
    np.testing.assert_array_equal(labels[1], expected)
    assert result.as_numpy("png")[0] == png
    rle = json.loads(result.as_numpy("rle")[1])
    assert rle == segment(server, jpeg, format="rle").json()


def test_every_output_when_none_is_named_and_v2_errors(server, triton, tiny_cards, jpeg):
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(jpeg).decode()], "parameters": {"image_format": "encoded"}}]}
    response = httpx.post(server.url + "/v2/models/polyp/infer", json=body, timeout=60)
    assert response.status_code == 200 and response.headers["X-Model-Version"] == "1"
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert list(outputs) == ["labels", "probabilities", "rle", "png"]
    assert base64.b64decode(outputs["png"]["data"][0]) == segment(server, jpeg).content
    polyp = tiny_cards["polyp"]

    def refused(path: str, status: int, **request) -> str:
        answer = httpx.post(server.url + path, timeout=60, **request)
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"error"} and isinstance(answer.json()["error"], str)
        return answer.json()["error"]

    infer = "/v2/models/polyp/infer"
    assert "no model named" in refused("/v2/models/nope/infer", 404, json=body)
    assert "no version 9" in refused("/v2/models/polyp/versions/9/infer", 404, json=body)
    # "²".isdigit() is True but int("²") raises: a Unicode digit is a bad version, not a crash
    assert "positive integers" in refused("/v2/models/polyp/versions/%C2%B2/infer", 404, json=body)
    assert "is not a length" in refused(infer, 400, content=b"{}",
                                        headers={"Inference-Header-Content-Length": "²".encode()})
    assert "not JSON" in refused(infer, 400, content=b"\x00\x01")
    assert "non-empty 'inputs'" in refused(infer, 400, json={"inputs": []})
    raw = {"name": "image", "datatype": "UINT8", "shape": [1, 64, 64, 3], "data": [0] * (64 * 64 * 3)}
    assert "must be UINT8 [1, 128, 128, 3]" in refused(infer, 400, json={"inputs": [raw]})
    assert "needs datatype BYTES" in refused(infer, 400, json={"inputs": [{**raw, "parameters": {
        "image_format": "encoded"}}]})
    assert "unknown output" in refused(infer, 400, json={**body, "outputs": [{"name": "logits"}]})
    assert "base64" in refused(infer, 400, json={"inputs": [{**body["inputs"][0], "data": ["%%%"]}]})
    undecodable = base64.b64encode(b"not an image").decode()
    refused(infer, 400, json={"inputs": [{**body["inputs"][0], "data": [undecodable]}]})
    header = json.dumps({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, *polyp.input_size, 3],
                                     "parameters": {"binary_data_size": 10}}]}).encode()
    assert "runs past" in refused(infer, 400, content=header + b"\x00" * 5,
                                  headers={"Inference-Header-Content-Length": str(len(header))})
    misnamed = tritonclient.InferInput("pixels", [1], "BYTES")
    misnamed.set_data_from_numpy(np.array([jpeg], dtype=object))
    with pytest.raises(tritonclient.InferenceServerException) as error:
        triton.infer("polyp", [misnamed])
    assert error.value.status() == "400" and "'image'" in error.value.message()


def test_kserve_rest_client_health_and_infer(server, tiny_cards, jpeg):
    polyp = tiny_cards["polyp"]
    images = canvases(polyp, 1)
    expected = np.asarray(Image.open(io.BytesIO(segment(server, jpeg).content)))

    async def scenario():
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=60))
        try:
            assert await client.is_server_live(server.url) and await client.is_server_ready(server.url)
            assert await client.is_model_ready(server.url, "polyp")
            raw = kserve.InferInput("image", list(images.shape), "UINT8")
            raw.set_data_from_numpy(images, binary_data=True)
            labels = RequestedOutput("labels", parameters={"binary_data": True})
            binary = await client.infer(server.url, kserve.InferRequest("polyp", [raw], request_outputs=[labels]),
                                        model_name="polyp")
            np.testing.assert_array_equal(binary.outputs[0].as_numpy()[0], run_onnx(polyp, images[0]))
            encoded = kserve.InferInput("image", [1], "BYTES")
            encoded.set_data_from_numpy(np.array([base64.b64encode(jpeg)], dtype=object), binary_data=False)
            json_labels = RequestedOutput("labels", parameters={"binary_data": False})
            answer = await client.infer(server.url, kserve.InferRequest("polyp", [encoded],
                                                                        request_outputs=[json_labels]),
                                        model_name="polyp")
            return answer.outputs[0].as_numpy()
        finally:
            await client.close()

    labels = asyncio.run(scenario())
    np.testing.assert_array_equal(labels[0], expected)
