"""The CRF quality benchmark scores its variants the service's way: refined labels at the original size."""

from __future__ import annotations

from benchmarks.crf_quality import NO_CRF, measure
from service.settings import CrfSettings


def test_every_variant_is_scored_on_the_split(segmentation_model):
    scores = measure(segmentation_model, {"fast": CrfSettings(preset="fast")}, "val", limit=2)
    assert [score.variant for score in scores] == [NO_CRF, "fast"]
    for score in scores:
        assert score.images == 2 and 0 <= score.mean_iou <= 1 and 0 <= score.dice <= 1
    assert scores[0].crf_ms is None and scores[1].crf_ms > 0


def test_record_writes_the_best_affordable_named_preset_into_the_card(segmentation_model, tmp_path):
    import shutil

    from benchmarks.crf_quality import Score, record_choices
    from modelcard.card import load_card

    shutil.copy2(segmentation_model.path, tmp_path / segmentation_model.path.name)
    card = load_card(tmp_path / segmentation_model.path.name)
    metric = "dice" if card.num_classes == 2 else "mean_iou"

    def score(variant, value, crf_ms):
        return Score(card.name, "val", 4, variant, value, value, crf_ms, inference_ms=100.0)

    scores = [score(NO_CRF, 0.80, None), score("seed", 0.90, 900.0),  # best, but 9x an inference
              score("fast", 0.81, 60.0), score("gentle", 0.82, 60.0), score("wide", 0.95, 50.0)]  # wide: no preset
    (line,) = record_choices([card], scores, "python -m benchmarks.crf_quality --record")
    recorded = load_card(card.path).crf
    assert recorded.preset == "gentle" and recorded.metric == metric and "gentle" in line
    assert recorded.scores == {NO_CRF: 0.80, "seed": 0.90, "fast": 0.81, "gentle": 0.82}
    assert (recorded.split, recorded.images) == ("val", 4)
