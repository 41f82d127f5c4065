"""FP16 ONNX conversion on a real exported model, checked in ONNX Runtime on real images."""

import onnx
import pytest
from onnx import TensorProto

from engine_builder import fp16
from engine_builder.checks import sample_images
from modelcard.parity import TOLERANCES


@pytest.fixture(scope="module")
def fp16_model(exported_card_path, tmp_path_factory):
    return fp16.write_fp16_onnx(exported_card_path.with_suffix(".onnx"),
                                tmp_path_factory.mktemp("fp16") / "model.fp16.onnx")


def elem_types(values):
    return {value.name: value.type.tensor_type.elem_type for value in values}


def test_io_types_stay_as_the_card_says_and_weights_become_fp16(fp16_model):
    model = onnx.load(str(fp16_model))
    onnx.checker.check_model(model)
    assert elem_types(model.graph.input) == {"image": TensorProto.UINT8}
    assert elem_types(model.graph.output) == {"probabilities": TensorProto.FLOAT, "labels": TensorProto.UINT8}
    float_weights = [init for init in model.graph.initializer
                     if init.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert sum(init.data_type == TensorProto.FLOAT16 for init in float_weights) > 0.9 * len(float_weights)


def test_sensitive_ops_run_in_fp32(fp16_model):
    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp16_model)))
    types = {**elem_types(model.graph.value_info), **elem_types(model.graph.input), **elem_types(model.graph.output)}
    sensitive = [node for node in model.graph.node if node.op_type in fp16.FP32_OPS]
    assert any(node.op_type == "Softmax" for node in sensitive)
    for node in sensitive:
        assert types[node.input[0]] == TensorProto.FLOAT, f"{node.op_type} {node.name} reads fp16"
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert convs and all(types.get(node.input[0]) == TensorProto.FLOAT16 for node in convs)


def test_fp16_labels_agree_with_fp32_on_real_images(exported_card_path, fp16_model, real_images):
    parity = fp16.fp16_parity(exported_card_path.with_suffix(".onnx"), fp16_model, real_images)
    assert parity.images == len(real_images) == 8
    assert parity.label_agreement >= TOLERANCES["onnx_fp16"][1]
    assert parity.max_abs_prob_diff < 0.05


def test_module_cli_writes_and_reports(exported_card_path, tmp_path, real_images, capsys):
    output = tmp_path / "converted.onnx"
    assert fp16.main([str(exported_card_path.with_suffix(".onnx")), "-o", str(output), "--parity-images", "2"]) == 0
    assert output.is_file() and "labels agree with" in capsys.readouterr().out


def test_images_from_a_folder(tmp_path, exported_card, real_images):
    from PIL import Image

    for index, image in enumerate(real_images[:3]):
        Image.fromarray(image[:40, :50]).save(tmp_path / f"{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = sample_images({}, 2, (32, 32), images_dir=tmp_path)
    assert loaded.shape == (2, 32, 32, 3) and loaded.dtype.name == "uint8"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .jpg"):
        sample_images({}, 2, (32, 32), images_dir=empty)
