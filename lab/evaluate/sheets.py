"""Contact sheets for looking at answers: the photo with its ground-truth boxes (green) and
its groups (red, with the predicted class); beside it, one row per group: the garment's crop
as the pipeline cut it (its tight box, the garment alone on green, its named colour and
probability: :func:`lab.colour.sheets.garment_tile`), then the group's top 5 products, each
with its background dimmed outside its own mask and its named colour (catalog photos framed
whole, as ingest frames them with ``crops.detect`` off) above its ``baseColour`` label."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from lab.colour.sheets import colour_caption, dimmed, garment_tile
from lab.evaluate.records import Answer, CatalogItem
from services.gateway.schemas import Group
from shared.crops import GarmentCrop, garment_crops
from shared.detection import WholeImageDetector
from shared.images import DEFAULT_MAX_PIXELS, load_work_image

__all__ = ["catalog_crop", "write_sheets"]

PHOTO_HEIGHT = 480
THUMB = 96
TOP = 5
TRUTH_COLOUR = (40, 180, 60)
GROUP_COLOUR = (220, 40, 40)
LINE = 11
_MAX_BYTES = 20_000_000

CropOf = Callable[[Path], GarmentCrop | None]


def catalog_crop(path: Path) -> GarmentCrop | None:
    """A catalog photo's crop as ingest makes it with ``crops.detect`` off: the whole frame,
    its mask and its named colour (``None``: a frame that cuts nothing)."""
    image, size = load_work_image(
        path.read_bytes(), max_bytes=_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS
    )
    [result] = WholeImageDetector().detect([image])
    crops = garment_crops(image, size, result, detect=False, name=str(path))
    return crops[0] if crops else None


def _crop_of(group: Group, crops: Sequence[GarmentCrop]) -> GarmentCrop | None:
    """The crop a group was answered for: the one whose box is the group's (the gateway
    rounds it to 0.1 px)."""
    if not group.box or not crops:
        return None

    def distance(crop: GarmentCrop) -> float:
        return sum(abs(a - b) for a, b in zip(crop.box, group.box or (), strict=True))

    best = min(crops, key=distance)
    return best if distance(best) <= 1.0 else None


def _thumb(item: CatalogItem, crop: GarmentCrop | None) -> Image.Image:
    if crop is not None:
        return dimmed(crop, (THUMB, THUMB))
    with Image.open(item.path) as thumb:
        return thumb.convert("RGB").resize((THUMB, THUMB))


def _sheet(
    photo: Image.Image,
    answer: Answer,
    by_url: Mapping[str, CatalogItem],
    crop_of: CropOf | None,
    note: str,
) -> Image.Image:
    scale = PHOTO_HEIGHT / photo.height
    shown = photo.convert("RGB").resize((max(1, round(photo.width * scale)), PHOTO_HEIGHT))
    draw = ImageDraw.Draw(shown)
    for label, box in answer.truth:
        draw.rectangle([v * scale for v in box], outline=TRUTH_COLOUR, width=2)
        draw.text((box[0] * scale + 3, box[1] * scale + 2), label, fill=TRUTH_COLOUR)
    groups = answer.response.groups
    for n, group in enumerate(groups, 1):
        if group.box:
            draw.rectangle([v * scale for v in group.box], outline=GROUP_COLOUR, width=2)
            draw.text(
                (group.box[0] * scale + 3, group.box[3] * scale - 12),
                f"{n} {group.category}",
                fill=GROUP_COLOUR,
            )
    tile_w = 2 * THUMB + 2
    row_h = THUMB + 3 * LINE + 6
    left = shown.width + 24
    width = left + tile_w + 12 + TOP * (THUMB + 4)
    sheet = Image.new("RGB", (width, max(PHOTO_HEIGHT, row_h * len(groups))), "white")
    sheet.paste(shown, (0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, group in enumerate(groups):
        y = n * row_h
        draw.text((shown.width + 6, y + THUMB // 2), str(n + 1), fill=GROUP_COLOUR)
        crop = _crop_of(group, answer.crops)
        if crop is not None:
            sheet.paste(garment_tile(crop, note or str(group.category), THUMB), (left, y))
        for i, rec in enumerate(group.recommendations[:TOP]):
            x = left + tile_w + 12 + i * (THUMB + 4)
            item = by_url.get(rec.url)
            if item is not None:
                found = crop_of(item.path) if crop_of is not None else None
                sheet.paste(_thumb(item, found), (x, y))
                if found is not None:
                    draw.text((x, y + THUMB + 2 + LINE), colour_caption(found), fill=(0, 0, 0))
                draw.text((x, y + THUMB + 2 + 2 * LINE), item.colour[:16], fill=(90, 90, 90))
            draw.text((x, y + THUMB + 2), (rec.category or "-")[:16], fill=(0, 0, 0))
    return sheet


def write_sheets(
    folder: Path,
    street: Sequence[Answer],
    products: Sequence[Answer],
    by_url: Mapping[str, CatalogItem],
    limit: int,
    *,
    catalog_masks: bool = True,
) -> int:
    """JPEG sheets of the first ``limit`` street and product answers; returns how many. The
    answers' own crops show when the run kept them (:attr:`Answer.crops`); the products'
    masks and named colours when ``catalog_masks`` (the catalog was framed whole at ingest,
    ``crops.detect`` off: cut again here, cheaply, as ingest cut it)."""
    folder.mkdir(parents=True, exist_ok=True)
    crop_of = functools.lru_cache(maxsize=1024)(catalog_crop) if catalog_masks else None
    by_path = {item.path: item for item in by_url.values()}
    written = 0
    for kind, answers in (("street", street), ("product", products)):
        for answer in answers[:limit]:
            item = by_path.get(answer.path)
            note = f"label: {item.colour}" if kind == "product" and item is not None else ""
            with Image.open(answer.path) as photo:
                sheet = _sheet(photo, answer, by_url, crop_of, note)
            sheet.save(folder / f"{kind}-{answer.path.stem}.jpg", quality=85)
            written += 1
    return written
