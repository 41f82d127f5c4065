"""DeepLabv3+ model: backbones, ASPP, decoder and the `build_deeplab` entry point."""

from training.model.backbones import BACKBONES, get_backbone
from training.model.deeplab import build_deeplab

__all__ = ["BACKBONES", "build_deeplab", "get_backbone"]
