"""Sidecar round trip and the rules that decide whether a plan may serve on this host."""

import json

import pytest

from engine_builder.cli import parser as build_parser
from modelcard.files import sidecar_path
from service.backends.tensorrt.errors import EngineMismatch, SidecarError
from service.backends.tensorrt.sidecar import (
    BatchProfile,
    Platform,
    mismatches,
    read_sidecar,
    rebuild_command,
    verify,
    write_sidecar,
)


def test_sidecar_round_trips_beside_the_plan_without_touching_the_model_card(tmp_path, make_sidecar):
    plan = tmp_path / "polyp.plan"
    sidecar = make_sidecar().with_results(parity={"label_agreement": 0.999}, benchmark=None)
    path = write_sidecar(sidecar, plan)
    assert path == tmp_path / "polyp.plan.json"  # engines/polyp.json is the model card
    assert read_sidecar(plan) == sidecar
    written = json.loads(path.read_text())
    assert written["profile"]["shapes"] == {"min": [1, 512, 512, 3], "opt": [8, 512, 512, 3],
                                            "max": [32, 512, 512, 3]}
    assert written["platform"] == {"tensorrt_version": "10.13.3.9", "gpu_name": "NVIDIA H200",
                                   "compute_capability": "9.0"}


def test_a_plan_built_here_matches(make_sidecar, h200):
    assert mismatches(make_sidecar(), h200, onnx_sha256="a" * 64, precision="fp16", max_batch=32) == []


BUILT_ON = Platform("10.13.3.9", "NVIDIA H200", "9.0")  # the conftest's h200


@pytest.mark.parametrize("running, expected, fragment", [
    (Platform("10.8.0.43", "NVIDIA H200", "9.0"), {}, "TensorRT 10.13.3.9"),
    (Platform("10.13.3.9", "NVIDIA L4", "8.9"), {}, "built on NVIDIA H200"),
    (Platform("10.13.3.9", "NVIDIA H100 80GB HBM3", "9.0"), {}, "built on NVIDIA H200"),
    (BUILT_ON, {"onnx_sha256": "b" * 64}, "the model card now lists bbbbbbbbbbbb"),
    (BUILT_ON, {"precision": "fp32"}, "built for fp16, fp32 was asked for"),
    (BUILT_ON, {"max_batch": 64}, "batches up to 32, the service batches up to 64"),
])
def test_each_difference_is_a_reason_to_rebuild(running, expected, fragment, make_sidecar):
    reasons = mismatches(make_sidecar(), running, **expected)
    assert len(reasons) == 1 and fragment in reasons[0]


def test_mismatch_error_names_the_plan_and_the_rebuild_command(tmp_path, make_sidecar, h200):
    plan = tmp_path / "polyp.plan"
    with pytest.raises(EngineMismatch) as error:
        verify(make_sidecar(), Platform("11.0.0", "NVIDIA H200", "9.0"), plan)
    message = str(error.value)
    assert str(plan) in message and "not portable" in message
    assert rebuild_command(make_sidecar(), plan) in message


def test_rebuild_command_is_accepted_by_build_engine_with_the_same_options(tmp_path, make_sidecar):
    plan = tmp_path / "polyp.plan"
    command = rebuild_command(make_sidecar(precision="fp32", max_batch=16), plan).split()
    assert command[:2] == ["python", "build_engine.py"]
    args = build_parser().parse_args(command[2:])
    assert (args.output, args.precision, args.max_batch, args.opt_batch, args.input_size) == \
        (plan, "fp32", 16, 8, (512, 512))


def test_missing_or_broken_sidecars_name_file_and_field(tmp_path, make_sidecar):
    plan = tmp_path / "polyp.plan"
    with pytest.raises(SidecarError, match="sidecar not found"):
        read_sidecar(plan)
    data = make_sidecar().to_json()
    del data["onnx_sha256"]
    sidecar_path(plan).write_text(json.dumps(data))
    with pytest.raises(SidecarError, match=r"polyp.plan.json: missing field 'onnx_sha256'"):
        read_sidecar(plan)
    sidecar_path(plan).write_text(json.dumps({**make_sidecar().to_json(), "precision": "int8"}))
    with pytest.raises(SidecarError, match="'precision' is 'int8'"):
        read_sidecar(plan)
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(SidecarError, match="not readable JSON"):
        read_sidecar(plan)


def test_batch_profile_rejects_an_unordered_range():
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        BatchProfile(4, 2, 8, 512, 512)


def test_sidecars_are_replaced_whole_or_not_at_all(tmp_path, make_sidecar, monkeypatch):
    """A crash mid-write on the engine volume must leave the previous sidecar readable."""
    import os

    from service.backends.tensorrt import files

    plan = tmp_path / "polyp.plan"
    write_sidecar(make_sidecar(), plan)

    def crash(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_sidecar(make_sidecar(precision="fp32"), plan)
    assert read_sidecar(plan) == make_sidecar() and os.listdir(tmp_path) == ["polyp.plan.json"]
