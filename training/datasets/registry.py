"""`get_dataset(name, root, split)`: one entry per reader module, each a layout and nothing more."""

from pathlib import Path
from types import ModuleType

from . import camvid, cityscapes, folder, kvasir, voc
from .base import SegmentationDataset, data_root, require_path
from .shifted import shifted, split_and_shift

READERS: dict[str, ModuleType] = {
    "folder": folder,
    "kvasir": kvasir,
    "camvid": camvid,
    "voc": voc,
    "cityscapes": cityscapes,
}


def get_dataset(
    name: str, root: str | Path | None = None, split: str = "train", **options
) -> SegmentationDataset:
    """Read one split; `root` defaults to `data_root() / <the dataset's folder>`.

    `options` go to the reader (only "folder" takes any: `classes`, `palette`).
    `split` may end in `@<shift>` (`val@mixed`): that split under a fixed appearance shift
    (`training.datasets.shifted`).
    """
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}")
    reader = READERS[name]
    if root is None:
        if reader.FOLDER is None:
            raise ValueError(f"dataset {name!r} has no default location: pass root=")
        root = data_root() / reader.FOLDER
    root = require_path(Path(root), f"{name} dataset root")
    split, shift = split_and_shift(split)
    dataset = reader.load(root, split, **options)
    return shifted(dataset, shift) if shift else dataset
