"""The speed/parity report scripts/gpu_check.sh prints from a plan's sidecar."""

import pytest

from engine_builder import report
from service.backends.tensorrt.sidecar import write_sidecar


def timings(*rows):
    return [{"batch": batch, "latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1, "images_per_s": rate}
            for batch, p50, rate in rows]


BENCHMARK = {"tensorrt_fp16": timings((1, 2.0, 500.0), (8, 8.0, 1000.0)),
             report.ONNX_RUNTIME_CUDA: timings((1, 5.0, 200.0), (8, 40.0, 200.0))}


def test_ratios_pair_the_runtimes_by_batch():
    rows = report.compare(BENCHMARK)
    assert [row.batch for row in rows] == [1, 8]
    assert [row.latency_speedup for row in rows] == [2.5, 5.0]
    assert [row.throughput_ratio for row in rows] == [2.5, 5.0]


def test_onnx_runtime_on_cpu_is_not_a_cuda_comparison():
    with pytest.raises(ValueError, match="no ONNX Runtime CUDA timings"):
        report.compare({"tensorrt_fp16": BENCHMARK["tensorrt_fp16"],
                        "onnxruntime_CPUExecutionProvider_fp32": BENCHMARK[report.ONNX_RUNTIME_CUDA]})


def test_cli_prints_the_table_and_fails_when_parity_was_skipped(tmp_path, make_sidecar, capsys):
    plan = tmp_path / "polyp.plan"
    write_sidecar(make_sidecar().with_results(parity=make_sidecar().parity, benchmark=BENCHMARK), plan)
    assert report.main([str(plan)]) == 0
    out = capsys.readouterr().out
    assert "labels agree on 99.9000% of pixels over 16 real images" in out
    assert "    8        8.00       40.00        5.00x" in out
    write_sidecar(make_sidecar().with_results(parity={"skipped": "no images"}, benchmark=BENCHMARK), plan)
    assert report.main([str(plan)]) == 1
    assert "parity not measured: no images" in capsys.readouterr().err
