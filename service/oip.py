"""The Open Inference Protocol (KServe v2) REST wire format: request bodies in, response bodies out.

Pure functions, no model knowledge: `service/api/v2.py` maps the tensors onto the pipeline. Follows
the protocol (kserve/open-inference-protocol) and Triton's binary tensor data extension: with an
`Inference-Header-Content-Length` header the body is that many bytes of JSON followed by the
binary tensors, in input order, each input marked by `parameters.binary_data_size`; binary data is
little-endian, row-major; a BYTES element is a 4-byte little-endian length and then its bytes. An
output is returned as binary when its request says `parameters.binary_data`, or, by default, when
the request's `parameters.binary_data_output` is true.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import ServiceError

HEADER_LENGTH = "Inference-Header-Content-Length"
DTYPES = {  # OIP datatype -> little-endian NumPy dtype; BYTES has none (length-prefixed elements)
    "BOOL": "|b1", "UINT8": "|u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "|i1",
    "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
BYTES = "BYTES"


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, "invalid_inference_request", message)


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]  # an array of `shape`, or the BYTES elements in row-major order
    binary: bool  # sent as binary data (else as JSON; BYTES elements were then JSON strings)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[InputTensor]
    outputs: dict[str, bool] | None  # requested output name -> as binary; None: every output
    binary_default: bool  # `binary_data_output`: the default for outputs not saying otherwise


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | Sequence[bytes | str]  # BYTES as JSON: str elements; as binary: bytes elements
    binary: bool


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request in `body`: JSON alone, or JSON then binary tensors when the header gives its length."""
    if header_length is None:
        header, binary = body, b""
    else:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise bad_request(f"{HEADER_LENGTH} {header_length!r} is not a length within the {len(body)}-byte body")
        header, binary = body[: int(header_length)], body[int(header_length):]
    try:
        document = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request is not JSON ({exc}); binary tensors need {HEADER_LENGTH}") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) or not document["inputs"]:
        raise bad_request("the request must be a JSON object with a non-empty 'inputs' list")
    parameters = _parameters(document, "request")
    offset = 0
    inputs = []
    for item in document["inputs"]:
        tensor, offset = _input(item, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes of binary data follow the tensors the inputs describe")
    return InferRequest(_optional_str(document, "id"), inputs, _outputs(document.get("outputs")),
                        bool(_flag(parameters, "binary_data_output", "request")))


def _input(item: Any, binary: bytes, offset: int) -> tuple[InputTensor, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise bad_request("every input needs a 'name'")
    name, datatype, shape = item["name"], item.get("datatype"), item.get("shape")
    if datatype not in DTYPES and datatype != BYTES:
        raise bad_request(f"input {name!r}: datatype {datatype!r} is not one of the protocol's")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise bad_request(f"input {name!r}: 'shape' must be a list of non-negative integers")
    count = math.prod(shape)
    parameters = _parameters(item, f"input {name!r}")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
            raise bad_request(f"input {name!r}: binary_data_size {size!r} runs past the {len(binary)} binary bytes")
        chunk = binary[offset: offset + size]
        data = _bytes_elements(chunk, count, name) if datatype == BYTES else _binary_array(chunk, datatype, shape, name)
        return InputTensor(name, datatype, tuple(shape), data, True, parameters), offset + size
    if "data" not in item:
        raise bad_request(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    data = _json_strings(item["data"], count, name) if datatype == BYTES else _json_array(item["data"], datatype,
                                                                                           shape, name)
    return InputTensor(name, datatype, tuple(shape), data, False, parameters), offset


def _binary_array(chunk: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    dtype = np.dtype(DTYPES[datatype])
    if len(chunk) != math.prod(shape) * dtype.itemsize:
        raise bad_request(f"input {name!r}: {len(chunk)} bytes of {datatype} cannot have shape {shape}")
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _json_array(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    try:
        array = np.asarray(data, dtype=np.dtype(DTYPES[datatype]))
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad_request(f"input {name!r}: data is not {datatype} ({exc})") from None
    if array.size != math.prod(shape):
        raise bad_request(f"input {name!r}: {array.size} values cannot have shape {shape}")
    return array.reshape(shape)


def _json_strings(data: Any, count: int, name: str) -> list[bytes]:
    flat = list(_flatten(data))
    if not all(isinstance(element, str) for element in flat) or len(flat) != count:
        raise bad_request(f"input {name!r}: BYTES data must be {count} JSON strings")
    return [element.encode() for element in flat]


def _flatten(data: Any):
    if isinstance(data, list):
        for element in data:
            yield from _flatten(element)
    else:
        yield data


def _bytes_elements(chunk: bytes, count: int, name: str) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise bad_request(f"input {name!r}: a BYTES element's 4-byte length is cut off")
        (length,) = struct.unpack_from("<I", chunk, offset)
        if offset + 4 + length > len(chunk):
            raise bad_request(f"input {name!r}: a BYTES element of {length} bytes runs past its data")
        elements.append(chunk[offset + 4: offset + 4 + length])
        offset += 4 + length
    if len(elements) != count:
        raise bad_request(f"input {name!r}: {len(elements)} BYTES elements for a shape of {count}")
    return elements


def _outputs(outputs: Any) -> dict[str, bool] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise bad_request("'outputs' must be a list of objects with a 'name'")
    return {o["name"]: _flag(_parameters(o, f"output {o['name']!r}"), "binary_data", f"output {o['name']!r}")
            for o in outputs}


def _parameters(document: dict, where: str) -> dict:
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise bad_request(f"{where}: 'parameters' must be an object")
    return parameters


def _flag(parameters: dict, key: str, where: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"{where}: parameter {key!r} must be true or false")
    return value


def _optional_str(document: dict, key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string")
    return value


def encode_response(model_name: str, model_version: str, request_id: str | None,
                    outputs: list[OutputTensor]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, followed by the binary outputs when there are any."""
    described, chunks = [], []
    for output in outputs:
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(output.shape)}
        if output.binary:
            chunk = _binary_chunk(output)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        elif output.datatype == BYTES:
            entry["data"] = list(output.data)
        else:
            entry["data"] = np.asarray(output.data).ravel().tolist()
        described.append(entry)
    document = {"model_name": model_name, "model_version": model_version, "outputs": described}
    if request_id is not None:
        document["id"] = request_id
    header = json.dumps(document, separators=(",", ":")).encode()
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(chunks), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def _binary_chunk(output: OutputTensor) -> bytes:
    if output.datatype == BYTES:
        return b"".join(struct.pack("<I", len(element)) + element for element in output.data)
    return np.ascontiguousarray(output.data, dtype=np.dtype(DTYPES[output.datatype])).tobytes()
