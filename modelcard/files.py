"""Where models and their TensorRT plans sit on disk: the naming rules, in one place.

``engines/polyp.json`` is a model card beside ``engines/polyp.onnx``; a plan built from that ONNX
file is ``<cache>/polyp.plan`` with its sidecar ``<cache>/polyp.plan.json``, which is not a card.
"""

from __future__ import annotations

from pathlib import Path

PLAN_SUFFIX = ".plan"
SIDECAR_SUFFIX = ".json"  # appended to the plan's own name


def find_cards(directory: Path) -> list[Path]:
    """Every model card in ``directory``, by name; TensorRT plan sidecars are not cards."""
    return [path for path in sorted(directory.glob("*.json"))
            if not path.name.endswith(PLAN_SUFFIX + SIDECAR_SUFFIX)]


def plan_path(onnx_file: str | Path, directory: Path) -> Path:
    """``<directory>/<onnx stem>.plan``: the plan for a card's ONNX file."""
    return directory / (Path(onnx_file).stem + PLAN_SUFFIX)


def sidecar_path(plan: str | Path) -> Path:
    """``<plan>.json``: what the plan was built from and on, beside the plan."""
    plan = Path(plan)
    return plan.with_name(plan.name + SIDECAR_SUFFIX)
