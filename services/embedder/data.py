"""Labelled image sets for training and evaluation: a folder of class folders or a CSV.

* ``DIR/<category>/*.jpg``: the folder name is the label.
* ``labels.csv`` with a ``filename`` column and a label column (``--label-column``): paths are
  relative to the CSV's folder, or to its ``images/`` subfolder. Rows with an empty label are
  skipped (and counted).

The split is stratified and per class: a class's validation images depend only on its own
files, the seed and the fraction, so ``lookalike eval --split val`` reproduces the training
split exactly.
"""

from __future__ import annotations

import csv
import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from shared.errors import InvalidInputError, NotFoundError

__all__ = [
    "IMAGE_SUFFIXES",
    "LabelledImages",
    "Split",
    "load_labelled",
    "stratified_split",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
DEFAULT_LABEL_COLUMNS = ("label", "category", "articleType")
Split = Literal["all", "train", "val"]


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with one label each; ``classes`` is sorted."""

    paths: tuple[Path, ...]
    labels: tuple[str, ...]
    source: str
    label_column: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise InvalidInputError("paths and labels differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def targets(self, classes: list[str] | None = None) -> np.ndarray:
        """Class indices (``-1`` for a label outside ``classes``)."""
        index = {name: i for i, name in enumerate(classes or self.classes)}
        return np.array([index.get(label, -1) for label in self.labels], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: np.ndarray | list[int]) -> LabelledImages:
        return LabelledImages(
            tuple(self.paths[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            self.source,
            self.label_column,
            dict(self.skipped),
        )

    def fingerprint(self) -> str:
        """SHA-256 of the sorted (file name, label) list: the same data gives the same hash."""
        root = Path(self.source)
        base = root if root.is_dir() else root.parent
        lines = sorted(f"{_relative(path, base)}\t{label}" for path, label in self)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def __iter__(self) -> Iterator[tuple[Path, str]]:
        return iter(zip(self.paths, self.labels, strict=True))


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def load_labelled(
    data: str | Path, label_column: str | None = None, *, min_per_class: int = 1
) -> LabelledImages:
    """Load a class-folder tree or a CSV; classes with fewer than ``min_per_class`` images are
    dropped (counted in ``skipped``)."""
    path = Path(data)
    if not path.exists():
        raise NotFoundError(f"no data at {path}")
    if path.is_dir():
        if label_column is not None:
            raise InvalidInputError("--label-column applies to a CSV, not to a folder")
        images = _from_folder(path)
    elif path.suffix.lower() == ".csv":
        images = _from_csv(path, label_column)
    else:
        raise InvalidInputError(f"{path} is neither a folder of class folders nor a .csv file")
    if min_per_class > 1:
        counts = Counter(images.labels)
        keep = [i for i, label in enumerate(images.labels) if counts[label] >= min_per_class]
        dropped = len(images) - len(keep)
        images = images.subset(keep)
        if dropped:
            images.skipped[f"classes with fewer than {min_per_class} images"] = dropped
    if not images.paths:
        raise InvalidInputError(f"no labelled images found in {path}")
    return images


def _from_folder(root: Path) -> LabelledImages:
    paths: list[Path] = []
    labels: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                labels.append(folder.name)
    if not paths:
        raise InvalidInputError(
            f"{root} has no class folders with images (expected {root}/<category>/*.jpg)"
        )
    return LabelledImages(tuple(paths), tuple(labels), str(root))


def _from_csv(csv_path: Path, label_column: str | None) -> LabelledImages:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "filename" not in columns:
            raise InvalidInputError(f"{csv_path} needs a 'filename' column; it has {columns}")
        column = label_column or next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
        if column is None or column not in columns:
            raise InvalidInputError(
                f"label column {label_column or 'label'!r} is not in {csv_path}; "
                f"choose one with --label-column from {columns}"
            )
        rows = list(reader)
    base = csv_path.parent
    paths: list[Path] = []
    labels: list[str] = []
    skipped: Counter[str] = Counter()
    for row in rows:
        label = (row.get(column) or "").strip()
        name = (row.get("filename") or "").strip()
        if not label:
            skipped["empty label"] += 1
            continue
        if not name:
            skipped["empty filename"] += 1
            continue
        candidates = (base / name, base / "images" / name)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            skipped["file not found"] += 1
            continue
        paths.append(found)
        labels.append(label)
    return LabelledImages(tuple(paths), tuple(labels), str(csv_path), column, dict(skipped))


def stratified_split(
    images: LabelledImages, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: ``val_fraction`` of every class (at least one image of a
    class with two or more, never all of it)."""
    if not 0 < val_fraction < 1:
        raise InvalidInputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(images.labels):
        by_class.setdefault(label, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for label, members in sorted(by_class.items()):
        members = sorted(members, key=lambda i: images.paths[i].as_posix())
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = [members[j] for j in rng.permutation(len(members))]
        n_val = (
            0 if len(order) < 2 else min(len(order) - 1, max(1, round(len(order) * val_fraction)))
        )
        val += order[:n_val]
        train += order[n_val:]
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def select_split(
    images: LabelledImages, split: Split, val_fraction: float = 0.2, seed: int = 0
) -> LabelledImages:
    """The ``all``, ``train`` or ``val`` part of ``images``."""
    if split == "all":
        return images
    train, val = stratified_split(images, val_fraction, seed)
    return images.subset(train if split == "train" else val)
