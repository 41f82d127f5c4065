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
