"""Backbone registry: a new backbone is one new module plus one entry here."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from training.model.backbones.base import BackboneFeatures
from training.model.backbones.mobilenet import build_mobilenetv2
from training.model.backbones.xception import XCEPTION_SPECS, xception_builder
from training.model.blocks import BlockSettings

# name -> builder(inputs, *, output_stride, settings, **options) -> BackboneFeatures
BACKBONES: dict[str, Callable[..., BackboneFeatures]] = {
    "mobilenetv2": build_mobilenetv2,
    **{f"xception{depth}": xception_builder(depth) for depth in XCEPTION_SPECS},
}

_FIXED_ARGUMENTS = ("inputs", "output_stride", "settings")


def backbone_option_names(name: str) -> list[str]:
    """Options a backbone accepts in `backbone_options` (e.g. ["alpha"])."""
    parameters = inspect.signature(BACKBONES[name]).parameters
    return [p for p in parameters if p not in _FIXED_ARGUMENTS]


def get_backbone(
    name: str,
    inputs,
    *,
    output_stride: int,
    settings: BlockSettings,
    options: Mapping[str, Any] | None = None,
) -> BackboneFeatures:
    """Build backbone `name` on `inputs` and return its low/high-level features."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(sorted(BACKBONES))}")
    options = dict(options or {})
    allowed = backbone_option_names(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"backbone {name!r} does not accept backbone_options {unknown}; "
            f"accepted: {allowed or 'none'}"
        )
    return BACKBONES[name](inputs, output_stride=output_stride, settings=settings, **options)


__all__ = ["BACKBONES", "BackboneFeatures", "backbone_option_names", "get_backbone"]
