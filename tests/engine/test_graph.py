"""The graph TensorRT builds from: no cast to UINT8 from an integer type (TensorRT's kUINT8
converts only from/to FLOAT and HALF), and the same labels as the exported graph."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine_builder import fp16, graph
from modelcard.onnx_runner import OnnxRunner


def uint8_casts_from_non_float(model):
    types = graph._elem_types(model)
    return [node.name for node in model.graph.node
            if node.op_type == "Cast" and graph._cast_target(node) == TensorProto.UINT8
            and types[node.input[0]] not in graph.FLOAT_TYPES]


def producer(model, tensor):
    return next(node for node in model.graph.node if tensor in node.output)


def argmax_model():
    """scores [N, 4] -> ArgMax (INT64) -> Cast UINT8, as the exporter ends the labels."""
    nodes = [helper.make_node("ArgMax", ["scores"], ["ids"], axis=1, keepdims=0),
             helper.make_node("Cast", ["ids"], ["labels"], to=TensorProto.UINT8, name="labels_cast")]
    model = helper.make_model(helper.make_graph(
        nodes, "argmax", [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [None])]),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_argmax_labels_are_cast_through_float_and_keep_their_values(tmp_path):
    original = argmax_model()
    assert uint8_casts_from_non_float(original) == ["labels_cast"]
    rewritten, count = graph.route_uint8_casts_through_float(original)
    assert count == 1 and uint8_casts_from_non_float(rewritten) == []
    last = producer(rewritten, "labels")
    to_float = producer(rewritten, last.input[0])
    assert (last.op_type, graph._cast_target(last)) == ("Cast", TensorProto.UINT8)
    assert (to_float.op_type, graph._cast_target(to_float)) == ("Cast", TensorProto.FLOAT)
    assert producer(rewritten, to_float.input[0]).op_type == "ArgMax"
    assert uint8_casts_from_non_float(original) == ["labels_cast"]  # the input model is untouched

    import onnxruntime as ort

    scores = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    outputs = []
    for model in (original, rewritten):
        path = tmp_path / f"{len(outputs)}.onnx"
        onnx.save(model, str(path))
        outputs.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"scores": scores})[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[1], scores.argmax(1))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_exported_graph_as_fed_to_tensorrt(exported_card_path, real_images, tmp_path, precision):
    exported = exported_card_path.with_suffix(".onnx")
    source = exported
    if precision == "fp16":
        source = fp16.write_fp16_onnx(exported, tmp_path / "model.fp16.onnx")
    assert uint8_casts_from_non_float(onnx.load(str(source)))  # the exporter's ArgMax -> UINT8
    fed = tmp_path / "model.tensorrt.onnx"
    assert graph.write_tensorrt_onnx(source, fed) == 1
    model = onnx.load(str(fed))
    assert uint8_casts_from_non_float(model) == []
    image_cast = next(node for node in model.graph.node if "image" in node.input)
    assert image_cast.op_type == "Cast" and graph._cast_target(image_cast) in graph.FLOAT_TYPES
    _, expected = OnnxRunner(source)(real_images[:2])
    _, labels = OnnxRunner(fed)(real_images[:2])
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
