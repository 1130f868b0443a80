"""Labelled image sets for training and evaluation: a folder of class folders or a CSV.

* ``DIR/<category>/*.jpg``: the folder name is the label.
* ``labels.csv`` with a ``filename`` column and a label column (``--label-column``): paths are
  relative to the CSV's folder, or to its ``images/`` subfolder. Rows with an empty label are
  skipped (and counted).
* ``boxes.csv``: the same plus ``x1,y1,x2,y2`` pixel columns, one garment box per row. Each box
  is cut as a detector cuts it at query time (grown by the detector's margin,
  :func:`shared.detection.grow_box`) into a crop cache, once.

:func:`combine` joins several sets into one training set in the classes of the first (the
*primary* source, which alone gives the validation split): every other label is read through
the shared taxonomy (``"Tshirts"`` and ``"blouse"`` are both ``tops``), with explicit aliases for
what the taxonomy files elsewhere (``jeans=pants``); labels that mean none of the classes are
dropped and counted.

The split is stratified and per class: a class's validation images depend only on its own
files, the seed and the fraction, so ``lookalike eval --split val`` reproduces the training
split exactly.
"""

from __future__ import annotations

import csv
import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from shared.detection import grow_box, held_out
from shared.errors import InvalidInputError, NotFoundError
from shared.settings import DetectorSettings, get_settings
from shared.taxonomy import garment_class, normalise

__all__ = [
    "BOX_COLUMNS",
    "IMAGE_SUFFIXES",
    "LabelledImages",
    "Mixture",
    "ShopCheck",
    "Split",
    "combine",
    "hold_out_photos",
    "load_labelled",
    "mix",
    "relabel",
    "stratified_split",
    "to_classes",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
DEFAULT_LABEL_COLUMNS = ("label", "category", "articleType")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
Split = Literal["all", "train", "val"]


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with one label each; ``classes`` is sorted.

    A combined set (:func:`combine`) also knows each image's source: ``domains[i]`` indexes
    ``sources``, and source 0 is the primary one.
    """

    paths: tuple[Path, ...]
    labels: tuple[str, ...]
    source: str
    label_column: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    domains: tuple[int, ...] = ()
    sources: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """The photo each box crop was cut from (empty for other sets)."""
    fine: tuple[str, ...] = ()
    """A finer label where a source has one (a shop's ``articleType`` under the class
    ``tops``), ``""`` elsewhere; the metric head learns both levels. Empty: none."""

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise InvalidInputError("paths and labels differ in length")
        if self.domains and len(self.domains) != len(self.paths):
            raise InvalidInputError("paths and domains differ in length")
        if self.groups and len(self.groups) != len(self.paths):
            raise InvalidInputError("paths and groups differ in length")
        if self.fine and len(self.fine) != len(self.paths):
            raise InvalidInputError("paths and fine labels differ in length")

    @property
    def domain(self) -> np.ndarray:
        """Each image's source index (all 0 for a single source)."""
        if not self.domains:
            return np.zeros(len(self), dtype=np.int64)
        return np.array(self.domains, dtype=np.int64)

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
        return replace(
            self,
            paths=tuple(self.paths[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            skipped=dict(self.skipped),
            domains=tuple(self.domains[i] for i in indices) if self.domains else (),
            groups=tuple(self.groups[i] for i in indices) if self.groups else (),
            fine=tuple(self.fine[i] for i in indices) if self.fine else (),
        )

    def fingerprint(self) -> str:
        """SHA-256 of the sorted (file name, label) list: the same data gives the same hash. An
        image of another source than the primary counts by its source's and its own name."""
        root = Path(self.source)
        base = root if root.is_dir() else root.parent
        lines = sorted(
            f"{_relative(path, base)}\t{label}"
            if domain == 0
            else f"{source_name(self.sources[domain])}/{path.name}\t{label}"
            for path, label, domain in zip(self.paths, self.labels, self.domain, strict=True)
        )
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def __iter__(self) -> Iterator[tuple[Path, str]]:
        return iter(zip(self.paths, self.labels, strict=True))


def source_name(source: str) -> str:
    """A source's short name: its folder (a CSV's folder for a CSV)."""
    path = Path(source)
    return path.parent.name if path.suffix else path.name


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def load_labelled(
    data: str | Path,
    label_column: str | None = None,
    *,
    min_per_class: int = 1,
    crops: str | Path | None = None,
) -> LabelledImages:
    """Load a class-folder tree, a CSV or a boxes CSV; classes with fewer than ``min_per_class``
    images are dropped (counted in ``skipped``). A boxes CSV's crops are cut into ``crops``
    (default: a folder named after the CSV's content in ``LOOKALIKE_DATA_DIR/cache/crops``)."""
    path = Path(data)
    if not path.exists():
        raise NotFoundError(f"no data at {path}")
    if path.is_dir():
        if label_column is not None:
            raise InvalidInputError("--label-column applies to a CSV, not to a folder")
        images = _from_folder(path)
    elif path.suffix.lower() == ".csv":
        images = _from_csv(path, label_column, crops)
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


def _from_csv(csv_path: Path, label_column: str | None, crops: str | Path | None) -> LabelledImages:
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
    if all(c in columns for c in BOX_COLUMNS):
        return _from_boxes(csv_path, rows, column, crops)
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


def _from_boxes(
    csv_path: Path, rows: list[dict[str, str]], column: str, crops: str | Path | None
) -> LabelledImages:
    """One crop per box row, cut with the detector's margin into the crop cache."""
    margin = DetectorSettings().margin
    digest = hashlib.sha256(csv_path.read_bytes() + f"{margin}".encode()).hexdigest()[:16]
    if crops is None:
        crops = get_settings().data_dir / "cache" / "crops"
    folder = Path(crops) / f"{csv_path.parent.name}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    base = csv_path.parent
    paths: list[Path] = []
    labels: list[str] = []
    groups: list[str] = []
    skipped: Counter[str] = Counter()
    opened: tuple[Path, Image.Image] | None = None
    for n, row in enumerate(rows):
        label = (row.get(column) or "").strip()
        name = (row.get("filename") or "").strip()
        if not label or not name:
            skipped["empty label" if not label else "empty filename"] += 1
            continue
        try:
            box = tuple(float(row[c]) for c in BOX_COLUMNS)
        except (TypeError, ValueError):
            skipped["bad box"] += 1
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            skipped["bad box"] += 1
            continue
        target = folder / f"{n:06d}-{Path(name).stem}.jpg"
        if not target.is_file():
            source = next((c for c in (base / name, base / "images" / name) if c.is_file()), None)
            if source is None:
                skipped["file not found"] += 1
                continue
            if opened is None or opened[0] != source:
                with Image.open(source) as photo:
                    opened = (source, photo.convert("RGB"))
            rgb = opened[1]
            x0, y0, x1, y1 = grow_box(box, margin, rgb.width, rgb.height)  # type: ignore[arg-type]
            rgb.crop((x0, y0, x1, y1)).save(target, quality=92)
        paths.append(target)
        labels.append(label)
        groups.append(name)
    return LabelledImages(
        tuple(paths), tuple(labels), str(csv_path), column, dict(skipped), groups=tuple(groups)
    )


def hold_out_photos(
    images: LabelledImages, val_fraction: float, seed: int = 0
) -> tuple[LabelledImages, LabelledImages]:
    """``(train, held)`` box crops, split by photo as the detector splits the same box dataset
    (:func:`shared.detection.held_out` over its photos in name order)."""
    if not images.groups:
        raise InvalidInputError(
            f"{images.source} is not a boxes CSV: only box crops split by photo"
        )
    photos = sorted(set(images.groups))
    held = {photos[i] for i in held_out(len(photos), val_fraction, seed)}
    inside = [i for i, photo in enumerate(images.groups) if photo in held]
    outside = [i for i, photo in enumerate(images.groups) if photo not in held]
    return images.subset(outside), images.subset(inside)


def to_classes(label: str, classes: Sequence[str], aliases: Mapping[str, str]) -> str | None:
    """The class of ``classes`` that ``label`` means, or ``None``.

    An alias (keys and values in any spelling) wins; else the class the taxonomy reads the
    label as, or its parent (``"Tshirts"`` -> t-shirt -> its parent top -> ``"tops"``).
    """
    by_garment: dict[str, str] = {}
    for name in classes:
        garment = garment_class(name)
        by_garment.setdefault(garment.name if garment else normalise(name), name)
    aliased = {normalise(k): v for k, v in aliases.items()}
    if normalise(label) in aliased:
        return aliased[normalise(label)]
    garment = garment_class(label)
    if garment is None:
        return by_garment.get(normalise(label))
    return by_garment.get(garment.name) or by_garment.get(garment.parent)


def relabel(
    images: LabelledImages, classes: Sequence[str], aliases: Mapping[str, str] | None = None
) -> LabelledImages:
    """The images whose label means one of ``classes`` (:func:`to_classes`), labelled so, their
    own labels kept as ``fine``; the others are counted in ``skipped``."""
    aliases = dict(aliases or {})
    unknown = sorted(set(aliases.values()) - set(classes))
    if unknown:
        raise InvalidInputError(
            f"aliases name {unknown}, not classes of the training set: {classes}"
        )
    keep: list[int] = []
    labels: list[str] = []
    for i, label in enumerate(images.labels):
        target = to_classes(label, classes, aliases)
        if target is not None:
            keep.append(i)
            labels.append(target)
    out = images.subset(keep)
    out = replace(out, labels=tuple(labels), fine=tuple(images.labels[i] for i in keep))
    if len(keep) < len(images):
        out.skipped["not one of the classes"] = len(images) - len(keep)
    return out


def combine(
    primary: LabelledImages,
    extras: Sequence[LabelledImages],
    aliases: Mapping[str, str] | None = None,
    *,
    fine: Sequence[bool] = (),
) -> LabelledImages:
    """``primary`` plus every extra image whose label means one of the primary's classes
    (:func:`relabel`); what is dropped is counted in ``skipped`` per source. An extra flagged in
    ``fine`` keeps its own labels as the finer level (``"<source>: <label>"``)."""
    classes = primary.classes
    paths, labels = list(primary.paths), list(primary.labels)
    fine_labels = [""] * len(primary)
    domains = [0] * len(primary)
    skipped = {f"{primary.source}: {k}": v for k, v in primary.skipped.items()}
    for d, extra in enumerate(extras, start=1):
        mapped = relabel(extra, classes, aliases)
        paths += mapped.paths
        labels += mapped.labels
        keep_fine = d - 1 < len(fine) and fine[d - 1]
        fine_labels += [
            f"{source_name(extra.source)}: {f}" if keep_fine else "" for f in mapped.fine
        ]
        domains += [d] * len(mapped)
        for reason, count in mapped.skipped.items():
            skipped[f"{extra.source}: {reason}"] = count
    return LabelledImages(
        tuple(paths),
        tuple(labels),
        primary.source,
        primary.label_column,
        skipped,
        tuple(domains),
        (primary.source, *(e.source for e in extras)),
        fine=tuple(fine_labels) if any(fine_labels) else (),
    )


@dataclass(frozen=True)
class ShopCheck:
    """A shop catalog for retrieval figures: ``gallery`` (labelled in the model's classes, its own
    labels as ``fine``) and which of its images were held out of training (the shop queries)."""

    gallery: LabelledImages
    held: np.ndarray


@dataclass(frozen=True)
class Mixture:
    """A training set of several sources and what was held out of it to check the model."""

    images: LabelledImages
    checks: list[LabelledImages]
    """Held-out images of the other sources, in the primary's classes: query-time crops of
    held-out photos, held-out shop photos."""
    shop: ShopCheck | None


def mix(
    primary: LabelledImages,
    extras: Sequence[LabelledImages] = (),
    aliases: Mapping[str, str] | None = None,
    *,
    shop: LabelledImages | None = None,
    holdout_photos: float = 0.3,
    holdout_shop: float = 0.2,
    seed: int = 0,
) -> Mixture:
    """``primary`` plus ``extras`` plus ``shop`` (last), in the primary's classes.

    A boxes source's photos are held out by ``holdout_photos`` (:func:`hold_out_photos`), the
    shop's images by ``holdout_shop`` of each of its own labels; the shop's own labels train the
    metric head's fine level.
    """
    classes = primary.classes
    sources: list[LabelledImages] = []
    checks: list[LabelledImages] = []
    for extra in extras:
        if extra.groups and holdout_photos > 0:
            extra, held = hold_out_photos(extra, holdout_photos, seed)
            checks.append(
                replace(
                    relabel(held, classes, aliases),
                    source=f"crops of the {holdout_photos:.0%} held-out photos of {extra.source}",
                )
            )
        sources.append(extra)
    shop_check = None
    if shop is not None:
        gallery = relabel(shop, classes, aliases)
        held_mask = np.zeros(len(gallery), dtype=bool)
        if holdout_shop > 0:
            own = replace(gallery, labels=gallery.fine)
            _, held_idx = stratified_split(own, holdout_shop, seed)
            held_mask[held_idx] = True
        shop_check = ShopCheck(gallery, held_mask)
        checks.append(
            replace(
                gallery.subset(np.flatnonzero(held_mask)),
                source=f"the {holdout_shop:.0%} held-out photos of {shop.source}",
            )
        )
        held_paths = {gallery.paths[i] for i in np.flatnonzero(held_mask)}
        sources.append(shop.subset([i for i, p in enumerate(shop.paths) if p not in held_paths]))
    images = combine(
        primary,
        sources,
        aliases,
        fine=[False] * len(extras) + ([True] if shop is not None else []),
    )
    return Mixture(images, [c for c in checks if len(c)], shop_check)


def stratified_split(
    images: LabelledImages, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: ``val_fraction`` of every class (at least one image of a
    class with two or more, never all of it). In a combined set only the primary source's
    images are split; every other source's image trains."""
    if not 0 < val_fraction < 1:
        raise InvalidInputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    by_class: dict[str, list[int]] = {}
    train: list[int] = []
    val: list[int] = []
    for i, (label, domain) in enumerate(zip(images.labels, images.domain, strict=True)):
        if domain == 0:
            by_class.setdefault(label, []).append(i)
        else:
            train.append(i)
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
