"""Interleaved rounds: the headline rows sum their rounds, so the throughput is answers over total time."""

from __future__ import annotations

import pytest

from benchmarks.load import LoadResult
from benchmarks.report import Interleaved, Results, goal_line, other_model_rows, ratio_rows


def test_rounds_combine_into_answers_over_total_time():
    first = LoadResult(8, 10, 2.0, (0.1,) * 9, {200: 9, 503: 1})
    second = LoadResult(8, 10, 3.0, (0.2,) * 10, {200: 10})
    combined = LoadResult.combined([first, second])
    assert (combined.clients, combined.requests, combined.seconds) == (8, 20, 5.0)
    assert combined.statuses == {200: 19, 503: 1}
    assert combined.throughput == pytest.approx(19 / 5.0)
    assert combined.percentile_ms(50) == pytest.approx(200.0)


def test_report_shows_the_ratio_of_every_round():
    results = Results("polyp", (512, 512), 16, {}, "python -m benchmarks", rounds=2)
    results.load = {"raw": {8: LoadResult(8, 20, 1.0, (0.1,) * 20, {200: 20})},
                    "service": {8: LoadResult(8, 20, 1.0, (0.1,) * 18, {200: 18})}}
    results.round_ratios = {8: [0.88, 0.92]}
    rows = dict(ratio_rows(results))
    assert rows["service / raw ORT"] == ["0.90x"]
    assert rows["service / raw ORT, each of the 2 rounds"] == ["0.88, 0.92"]


def test_the_goals_hold_only_when_every_bundled_model_meets_them():
    def result(clients: int, answers: int) -> LoadResult:
        return LoadResult(clients, answers, 1.0, (0.1,) * answers, {200: answers})

    results = Results("polyp", (512, 512), 16, {}, "python -m benchmarks")
    results.load = {"raw": {1: result(1, 10), 8: result(8, 10)}, "service": {1: result(1, 10), 8: result(8, 11)}}
    results.other_models = {"camvid": {1: Interleaved(result(1, 10), result(1, 9), result(1, 9), [0.9]),
                                       8: Interleaved(result(8, 10), result(8, 10), result(8, 10), [1.0])}}
    line = goal_line(results)
    assert "at 1 client(s): polyp 1.00x, camvid 0.90x (in-process 0.90x), NOT met" in line
    assert "at 8 client(s): polyp 1.10x, camvid 1.00x (in-process 1.00x), met" in line
    assert "| camvid | 1 | 10.00 | 9.00 | 0.90x | 0.90 | 0.90x |" in "\n".join(other_model_rows(results))


def test_the_in_process_ceiling_sits_next_to_the_service():
    def result(clients: int, answers: int) -> LoadResult:
        return LoadResult(clients, answers, 1.0, (0.1,) * answers, {200: answers})

    results = Results("camvid", (512, 512), 16, {}, "python -m benchmarks")
    results.load = {"raw": {1: result(1, 100)}, "in-process": {1: result(1, 92)}, "service": {1: result(1, 88)}}
    assert dict(ratio_rows(results))["in-process pipeline / raw ORT (at 1 client, any server's ceiling)"] == ["0.92x"]
    assert "camvid 0.88x (in-process 0.92x), NOT met" in goal_line(results)
