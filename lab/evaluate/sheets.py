"""Contact sheets for looking at answers: the photo with its ground-truth boxes (green) and
its groups (red, with the predicted class), and each group's top 5 products beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from lab.evaluate.records import Answer, CatalogItem

__all__ = ["write_sheets"]

PHOTO_HEIGHT = 480
THUMB = 96
TOP = 5
TRUTH_COLOUR = (40, 180, 60)
GROUP_COLOUR = (220, 40, 40)


def _sheet(photo: Image.Image, answer: Answer, by_url: Mapping[str, CatalogItem]) -> Image.Image:
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
    row_h = THUMB + 16
    width = shown.width + 40 + TOP * (THUMB + 4)
    sheet = Image.new("RGB", (width, max(PHOTO_HEIGHT, row_h * len(groups))), "white")
    sheet.paste(shown, (0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, group in enumerate(groups):
        y = n * row_h
        draw.text((shown.width + 6, y + THUMB // 2), str(n + 1), fill=GROUP_COLOUR)
        for i, rec in enumerate(group.recommendations[:TOP]):
            x = shown.width + 40 + i * (THUMB + 4)
            item = by_url.get(rec.url)
            if item is not None:
                with Image.open(item.path) as thumb:
                    sheet.paste(thumb.convert("RGB").resize((THUMB, THUMB)), (x, y))
            draw.text((x, y + THUMB + 2), (rec.category or "-")[:14], fill=(0, 0, 0))
    return sheet


def write_sheets(
    folder: Path,
    street: Sequence[Answer],
    products: Sequence[Answer],
    by_url: Mapping[str, CatalogItem],
    limit: int,
) -> int:
    """JPEG sheets of the first ``limit`` street and product answers; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for kind, answers in (("street", street), ("product", products)):
        for answer in answers[:limit]:
            with Image.open(answer.path) as photo:
                sheet = _sheet(photo, answer, by_url)
            sheet.save(folder / f"{kind}-{answer.path.stem}.jpg", quality=85)
            written += 1
    return written
