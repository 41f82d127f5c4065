"""The model repository on disk: which models and versions `engines/` holds, read without loading anything.

Two layouts live side by side (docs/MODEL_CARD.md, "Versions"):
- flat, as the exporter writes it: `<dir>/<name>.json` + its files; the model is the card's `name`,
  and it is version 1;
- versioned, as Triton lays a repository out: `<dir>/<name>/<version>/` holding one card and its
  files, `<version>` a positive integer; the card's `name` must be `<name>`.

A scan is cheap (a directory walk, a `stat` per file, a small JSON card each): `poll` mode runs one
every few seconds. Each version carries a fingerprint (size and mtime of its card and of every ONNX
file it names), so a caller can tell a replaced version from an unchanged one, and a half-copied one (its
fingerprint still moving) from a settled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelcard.card import ModelCard, ModelCardError, load_card
from modelcard.files import find_cards

FLAT_VERSION = 1  # the version a flat `<name>.json` card is served as
Fingerprint = tuple[tuple[int, int] | None, ...]


class RepositoryError(RuntimeError):
    """The repository itself cannot be read (not one model's problem)."""


@dataclass(frozen=True)
class VersionSource:
    """One version on disk: its card (or why it cannot be read) and its fingerprint."""

    name: str
    version: int
    card_path: Path
    card: ModelCard | None
    error: str | None
    fingerprint: Fingerprint


Index = dict[str, dict[int, VersionSource]]  # model name -> version -> source


def scan(models_dir: Path) -> Index:
    """Every model and version under `models_dir` (RepositoryError if the directory is missing)."""
    if not models_dir.is_dir():
        raise RepositoryError(f"models directory {models_dir} does not exist")
    index: Index = {}
    for path in find_cards(models_dir):
        _add(index, _flat_source(path, index))
    try:
        model_dirs = sorted(p for p in models_dir.iterdir() if p.is_dir())
    except OSError as exc:
        raise RepositoryError(f"models directory {models_dir} cannot be read: {exc}") from None
    for model_dir in model_dirs:
        for version_dir in _version_dirs(model_dir):
            _add(index, _versioned_source(model_dir.name, int(version_dir.name), version_dir))
    return index


def _version_dirs(model_dir: Path) -> list[Path]:
    """The numbered directories in `model_dir`, in numeric order; none if it vanished while being scanned."""
    try:
        children = list(model_dir.iterdir())
    except OSError:
        return []
    return sorted((p for p in children if p.is_dir() and _is_version(p.name)), key=lambda p: int(p.name))


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit() and int(name) > 0  # "²".isdigit(), but int("²") fails


def _add(index: Index, source: VersionSource) -> None:
    versions = index.setdefault(source.name, {})
    if source.version in versions:
        other = versions[source.version].card_path
        source = _failed(source.name, source.version, source.card_path,
                         f"{source.card_path}: version {source.version} of {source.name!r} is also {other}")
        versions = index.setdefault(f"{source.name}@{source.card_path.name}", {})
    versions[source.version] = source


def _flat_source(path: Path, index: Index) -> VersionSource:
    try:
        card = load_card(path)
    except ModelCardError as exc:
        return _failed(path.stem, FLAT_VERSION, path, str(exc))
    if card.name in index:
        return _failed(f"{card.name}@{path.name}", FLAT_VERSION, path,
                       f"{path}: model name {card.name!r} is used by another card")
    return VersionSource(card.name, FLAT_VERSION, path, card, None, fingerprint(path, card))


def _versioned_source(name: str, version: int, version_dir: Path) -> VersionSource:
    cards = find_cards(version_dir)
    if len(cards) != 1:
        found = ", ".join(p.name for p in cards) or "none"
        return _failed(name, version, version_dir, f"{version_dir}: needs exactly one model card (found {found})")
    path = cards[0]
    try:
        card = load_card(path)
    except ModelCardError as exc:
        return _failed(name, version, path, str(exc))
    if card.name != name:
        return _failed(name, version, path, f"{path}: card names model {card.name!r}, but it sits in {name}/")
    return VersionSource(name, version, path, card, None, fingerprint(path, card))


def _failed(name: str, version: int, path: Path, error: str) -> VersionSource:
    return VersionSource(name, version, path, None, error, fingerprint(path, None))


def fingerprint(card_path: Path, card: ModelCard | None) -> Fingerprint:
    """(size, mtime) of the card and of its ONNX files (the INT8 variant too): changes when any is replaced or
    still being written."""
    paths = [card_path] if card is None else [card_path, *card.model_files]
    return tuple(_stat(path) for path in paths)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns
