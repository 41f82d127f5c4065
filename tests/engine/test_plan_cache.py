"""When a cached plan serves, and what the container entrypoint builds before the service starts."""

import argparse
import json
import shutil

import pytest

from engine_builder import ensure_engines
from engine_builder.cli import parser as build_parser
from modelcard.files import plan_path
from service.backends.tensorrt.plan_cache import decide, find_matching_plan
from service.backends.tensorrt.sidecar import Platform, write_sidecar


def place_plan(directory, sidecar, name="tiny"):
    plan = directory / f"{name}.plan"
    plan.write_bytes(b"PLAN")
    write_sidecar(sidecar, plan)
    return plan


def test_decisions(tmp_path, make_sidecar, h200):
    sha = "a" * 64
    missing = decide(tmp_path / "tiny.plan", sha, h200)
    assert missing.build and "no plan at" in missing.reasons[0]

    plan = place_plan(tmp_path, make_sidecar(onnx_sha256=sha))
    assert not decide(plan, sha, h200, precision="fp16", max_batch=32).build

    upgraded = decide(plan, sha, Platform("11.0.0.1", "NVIDIA H200", "9.0"))
    assert upgraded.build and "TensorRT 11.0.0.1" in upgraded.describe()
    assert decide(plan, "b" * 64, h200).build  # model re-exported since the build
    assert decide(plan, sha, h200, precision="fp32").build

    plan.with_name("tiny.plan.json").write_text("{}")
    broken = decide(plan, sha, h200)
    assert broken.build and "missing field" in broken.reasons[0]


@pytest.mark.parametrize("parity, fragment", [
    (None, "check against ONNX Runtime never completed"),
    ({"label_agreement": 0.97, "max_abs_prob_diff": 0.3, "images": 16}, "agreed with ONNX Runtime on 0.97"),
    ({"skipped": "no images"}, None),
])
def test_the_sidecars_parity_record_decides_too(tmp_path, make_sidecar, h200, parity, fragment):
    """A plan whose check never finished (a crash mid-check) or failed is rebuilt, not served."""
    plan = place_plan(tmp_path, make_sidecar(parity=parity))
    decision = decide(plan, "a" * 64, h200)
    assert decision.build == (fragment is not None)
    assert fragment is None or fragment in decision.describe()


def test_service_finds_the_first_matching_plan_of_any_precision(tmp_path, make_sidecar, h200):
    cache, engines = tmp_path / "cache", tmp_path / "engines"
    cache.mkdir(), engines.mkdir()
    sha = "a" * 64
    place_plan(cache, make_sidecar(platform=Platform("10.0.0", "NVIDIA L4", "8.9"), onnx_sha256=sha))
    local = place_plan(engines, make_sidecar(precision="fp32", onnx_sha256=sha))
    assert find_matching_plan("tiny.onnx", sha, [cache, engines], h200) == (local, [])
    plan, reasons = find_matching_plan("tiny.onnx", sha, [cache, engines], h200, max_batch=64)
    assert plan is None and len(reasons) == 2
    assert "built on NVIDIA L4" in reasons[0] and "batches up to 32" in reasons[1]
    assert plan_path("models/tiny.onnx", cache) == cache / "tiny.plan"


@pytest.fixture
def models(tmp_path, exported_card_path):
    directory = tmp_path / "models"
    directory.mkdir()
    for path in (exported_card_path, exported_card_path.with_suffix(".onnx")):
        shutil.copy2(path, directory / path.name)
    (directory / "broken.json").write_text("{}")
    return directory


def entrypoint_args(models, cache, **overrides):
    values = dict(models=models, cache=cache, precision="fp16", max_batch=32, opt_batch=8,
                  workspace_mb=2048, images=None, device=0)
    return argparse.Namespace(**{**values, **overrides})


def test_entrypoint_builds_a_missing_plan_then_reuses_it(models, tmp_path, exported_card, make_sidecar, h200, capsys):
    cache = tmp_path / "cache"
    builds = []

    def build(argv):
        builds.append(argv)
        args = build_parser().parse_args(argv)  # what build_engine.py would be called with
        place_plan(args.output.parent, make_sidecar(onnx_sha256=exported_card.files.onnx_sha256,
                                                    max_batch=args.max_batch), args.output.stem)
        return 0

    assert ensure_engines.ensure(entrypoint_args(models, cache), h200, build) == 0
    assert len(builds) == 1
    args = build_parser().parse_args(builds[0])
    assert args.onnx == models / f"{exported_card.files.onnx}"
    assert args.output == cache / f"{args.onnx.stem}.plan"
    assert (args.precision, args.max_batch, args.opt_batch) == ("fp16", 32, 8)
    output = capsys.readouterr()
    assert "(re)building: no plan at" in output.out and "skipping" in output.err and "broken.json" in output.err

    assert ensure_engines.ensure(entrypoint_args(models, cache), h200, build) == 0
    assert len(builds) == 1 and "matches this GPU and TensorRT, using it" in capsys.readouterr().out

    new_gpu = Platform(h200.tensorrt_version, "NVIDIA L40S", "8.9")
    assert ensure_engines.ensure(entrypoint_args(models, cache), new_gpu, build) == 0
    assert len(builds) == 2


def test_entrypoint_reports_a_failed_build_and_carries_on(models, tmp_path, h200, capsys):
    status = ensure_engines.ensure(entrypoint_args(models, tmp_path / "cache", max_batch=4), h200, lambda argv: 1)
    assert status == 1
    assert "build failed; it will be served by ONNX Runtime" in capsys.readouterr().err


def test_entrypoint_without_tensorrt_leaves_serving_to_onnx_runtime(models, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert ensure_engines.main(["--models", str(models), "--cache", str(tmp_path / "cache")]) == 0
    assert "TensorRT cannot be used here, serving with ONNX Runtime" in capsys.readouterr().err


def test_sidecars_are_not_mistaken_for_model_cards(models, make_sidecar):
    write_sidecar(make_sidecar(), models / "tiny.plan")
    names = [card.name for card in ensure_engines.model_cards(models)]
    assert len(names) == 1 and json.loads((models / "tiny.plan.json").read_text())["precision"] == "fp16"
