"""The ONNX graph TensorRT is fed: the exported graph with its casts made ones TensorRT accepts.

TensorRT converts to and from ``kUINT8`` only from and to ``kFLOAT``/``kHALF``
(``include/NvInferRuntimeBase.h``, ``DataType::kUINT8``), and ONNX-TensorRT's Cast importer
refuses the other casts with ``kUNSUPPORTED_NODE``. The exporter ends the labels with
``ArgMax`` (INT64) -> ``Cast(to=UINT8)``, so each such cast is routed through FLOAT here: class ids
are small integers, exact in FLOAT, and FLOAT -> UINT8 truncates them to themselves.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)


def _cast_target(node: onnx.NodeProto) -> int | None:
    return next((attribute.i for attribute in node.attribute if attribute.name == "to"), None)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {value.name: value.type.tensor_type.elem_type
             for value in (*graph.value_info, *graph.input, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def route_uint8_casts_through_float(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` where every Cast to UINT8 from a non-float type first casts to FLOAT;
    returns it and how many casts were rerouted."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    types = _elem_types(result)
    nodes, rerouted = [], 0
    for node in result.graph.node:
        source = node.input[0] if node.input else ""
        if node.op_type == "Cast" and _cast_target(node) == TensorProto.UINT8 \
                and types.get(source, TensorProto.UNDEFINED) not in FLOAT_TYPES:
            as_float = f"{source}/as_float_for_tensorrt"
            nodes.append(helper.make_node("Cast", [source], [as_float], to=TensorProto.FLOAT,
                                          name=f"{node.name or source}/to_float_for_tensorrt"))
            node.input[0] = as_float
            rerouted += 1
        nodes.append(node)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result, rerouted


def write_tensorrt_onnx(source: Path, destination: Path) -> int:
    """Write the graph TensorRT builds from; returns how many casts were rerouted."""
    model, rerouted = route_uint8_casts_through_float(onnx.load(str(source)))
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
    return rerouted
