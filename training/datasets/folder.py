"""A generic images/masks folder, for bringing your own labelled data.

Layout: images/<stem>.<jpg|jpeg|png|bmp|tif|tiff>, masks/<stem>.png (8-bit class ids,
255 = ignore), class names in classes.txt (one a line, in class-id order) unless passed as
`classes=`. With a splits/ folder, splits/<split>.txt lists the stems of each split; without
one, the whole folder is a single split and every `split` name returns all pairs.
"""

from collections.abc import Sequence
from pathlib import Path

from .base import (
    IGNORE_INDEX,
    Sample,
    SegmentationDataset,
    class_id_lut,
    pascal_colormap,
    read_id_list,
    require_path,
)

FOLDER = None  # no default location: the caller always names the folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _read_classes(root: Path) -> list[str]:
    path = root / "classes.txt"
    if not path.exists():
        raise FileNotFoundError(
            f"class names not found: {path} (one name a line, or pass classes=[...])"
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load(
    root: Path,
    split: str,
    classes: Sequence[str] | None = None,
    palette: Sequence[tuple[int, int, int]] | None = None,
) -> SegmentationDataset:
    image_dir = require_path(root / "images", "image folder")
    mask_dir = require_path(root / "masks", "mask folder")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if (root / "splits").is_dir():
        stems = read_id_list(root / "splits" / f"{split}.txt")
        missing = [stem for stem in stems if stem not in images]
        if missing:
            raise FileNotFoundError(
                f"image not found: {image_dir / missing[0]}.* (listed in split {split!r})"
            )
    else:
        stems = list(images)
    samples = [Sample(images[stem], mask_dir / f"{stem}.png") for stem in stems]
    class_names = list(classes) if classes is not None else _read_classes(root)
    return SegmentationDataset(
        name="folder",
        root=root,
        split=split,
        classes=class_names,
        palette=list(palette) if palette is not None else pascal_colormap(len(class_names)),
        ignore_index=IGNORE_INDEX,
        samples=samples,
        mask_lut=class_id_lut(len(class_names)),
    )
