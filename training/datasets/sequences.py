"""Splits by video sequence: hold whole drives (or recordings) out, so validation sees none of them.

Frames of one video sequence are near-duplicates of each other: validating on frames of a
sequence that training also holds measures memory of that drive, not generalisation to a new
one. A reader whose file names start with the sequence (CamVid: ``0016E5_07959.png``) can offer
derived splits named

    <base>-no-<SEQ>[,<SEQ>...]    the base split without those sequences   (train-no-0001TP)
    heldout-<SEQ>[,<SEQ>...]      only those sequences, from every base split (heldout-0001TP)

where <base> is one of the reader's folder splits or ``trainval`` (all of them). A held-out split
and the matching ``-no-`` split never share a sequence (tests/training/test_sequences.py checks it
on the real data).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ALL_SPLITS = "trainval"
_HELDOUT = re.compile(r"^heldout-(?P<sequences>[A-Za-z0-9,]+)$")
_WITHOUT = re.compile(r"^(?P<base>[A-Za-z0-9]+)-no-(?P<sequences>[A-Za-z0-9,]+)$")


def sequence_of(path: str | Path, separator: str = "_") -> str:
    """The sequence a frame belongs to: its file name up to the first ``separator``."""
    name = Path(path).name
    if separator not in name:
        raise ValueError(f"{name}: no {separator!r} in the name, so no sequence prefix")
    return name.split(separator, 1)[0]


@dataclass(frozen=True)
class SequenceSplit:
    """Which folder splits to read and which sequences to keep (``keep``) or drop (``drop``)."""

    bases: tuple[str, ...]
    keep: frozenset[str] | None = None
    drop: frozenset[str] = frozenset()

    def selects(self, path: str | Path) -> bool:
        sequence = sequence_of(path)
        return (self.keep is None or sequence in self.keep) and sequence not in self.drop


def _sequence_set(text: str) -> frozenset[str]:
    sequences = frozenset(part for part in text.split(",") if part)
    if not sequences:
        raise ValueError(f"no sequence named in {text!r}")
    return sequences


def parse_split(split: str, folder_splits: Sequence[str]) -> SequenceSplit:
    """A split name -> SequenceSplit; a plain folder split keeps everything."""
    if split in folder_splits:
        return SequenceSplit((split,))
    if split == ALL_SPLITS:
        return SequenceSplit(tuple(folder_splits))
    if match := _HELDOUT.match(split):
        return SequenceSplit(tuple(folder_splits), keep=_sequence_set(match["sequences"]))
    if match := _WITHOUT.match(split):
        base = match["base"]
        if base != ALL_SPLITS and base not in folder_splits:
            raise ValueError(f"split {split!r}: unknown base split {base!r}; choose one of "
                             f"{[*folder_splits, ALL_SPLITS]}")
        bases = tuple(folder_splits) if base == ALL_SPLITS else (base,)
        return SequenceSplit(bases, drop=_sequence_set(match["sequences"]))
    raise ValueError(
        f"unknown split {split!r}: choose one of {[*folder_splits, ALL_SPLITS]}, "
        f"'<split>-no-<SEQ>[,<SEQ>]' or 'heldout-<SEQ>[,<SEQ>]'"
    )


def select_frames(split: str, folder_splits: Sequence[str],
                  list_frames: Callable[[str], list[Path]]) -> list[Path]:
    """The frames of ``split``: ``list_frames(folder_split)`` for each base, filtered by sequence.

    A named sequence that none of the base splits holds is an error (a typo would otherwise
    silently hold out nothing, or validate on nothing).
    """
    spec = parse_split(split, folder_splits)
    frames = [path for base in spec.bases for path in list_frames(base)]
    present = {sequence_of(path) for path in frames}
    missing = sorted(((spec.keep or frozenset()) | spec.drop) - present)
    if missing:
        raise ValueError(f"split {split!r}: no frames of sequence(s) {missing} in {list(spec.bases)} "
                         f"(sequences there: {sorted(present)})")
    return [path for path in frames if spec.selects(path)]
