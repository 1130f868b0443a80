"""Contact sheets of the garment mask and the named colour: ``python -m lab.colour.sheets``.

One sheet of catalog validation photos and one of street garments, 16 crops each, picked with
a fixed seed. Each tile: the crop with the detector's tight box (red), the garment alone (the
mask's background painted green), and a caption: the named colour and its probability, then
the catalog's label (catalog) or the street class; ``FB`` marks a fallback mask.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from lab.colour.data import ColourCrop, catalog_crops, is_validation, street_crops
from lab.colour.train import DATA
from shared.crops import GarmentCrop
from shared.mask import keep_garment

__all__ = ["colour_caption", "contact_sheet", "dimmed", "garment_tile", "main"]

STREET = Path("../shared/data/street-photos-boxes-dev")
_TILE = 88
DIM = 0.7
"""How far :func:`dimmed` fades the background to :data:`DIM_TO`."""
DIM_TO = (150, 150, 150)
"""A mid grey: a shop's white backdrop dims as visibly as a street."""


def colour_caption(crop: GarmentCrop) -> str:
    """The crop's named colour and its probability (``FB``: a fallback mask)."""
    fallback = " FB" if crop.mask.fallback else ""
    return f"{crop.colour_name} {crop.colour_p or 0:.2f}{fallback}"


def dimmed(crop: GarmentCrop, size: tuple[int, int]) -> Image.Image:
    """The crop at ``size`` with everything but its garment faded towards grey: what the
    colour was read from stays as it is."""
    picture = crop.picture.convert("RGB").resize(size)
    return Image.blend(picture, keep_garment(picture, crop.mask, DIM_TO), DIM)


def garment_tile(crop: GarmentCrop, note: str, side: int = _TILE) -> Image.Image:
    """The crop with the detector's tight box (red), the garment alone (the mask's background
    painted green), and two lines: :func:`colour_caption`, then ``note``."""
    picture = crop.picture.convert("RGB")
    shown = picture.resize((side, side))
    sx, sy = side / picture.width, side / picture.height
    x0, y0, x1, y1 = crop.inner
    ImageDraw.Draw(shown).rectangle(
        (x0 * sx, y0 * sy, max(x0 * sx, x1 * sx - 1), max(y0 * sy, y1 * sy - 1)),
        outline=(255, 0, 0),
    )
    alone = keep_garment(picture, crop.mask, (0, 200, 0)).resize((side, side))
    tile = Image.new("RGB", (2 * side + 2, side + 24), (255, 255, 255))
    tile.paste(shown, (0, 0))
    tile.paste(alone, (side + 2, 0))
    draw = ImageDraw.Draw(tile)
    draw.text((2, side), colour_caption(crop), fill=(0, 0, 0))
    draw.text((2, side + 11), note[: (2 * side) // 6], fill=(90, 90, 90))
    return tile


def _tile(item: ColourCrop) -> Image.Image:
    return garment_tile(item.crop, f"label: {item.colour}" if item.colour else item.kind)


def contact_sheet(items: Sequence[ColourCrop], columns: int = 4) -> Image.Image:
    """The tiles of ``items`` in rows of ``columns`` (a palette PNG stays small)."""
    tiles = [_tile(item) for item in items]
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (w + 4), rows * (h + 4)), (200, 200, 200))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * (w + 4), (index // columns) * (h + 4)))
    return sheet.quantize(colors=192)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m lab.colour.sheets", description=__doc__)
    parser.add_argument("--catalog", type=Path, default=DATA)
    parser.add_argument("--street", type=Path, default=STREET)
    parser.add_argument("--out", type=Path, default=Path("docs/lab"))
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from services.detector.client import make_detector
    from shared.settings import get_settings

    rng = random.Random(args.seed)  # noqa: S311 - a sample to look at, not a secret
    catalog = [
        c
        for c in catalog_crops(args.catalog, make_detector(get_settings()), limit=600, named=True)
        if is_validation(c.key)
    ]
    street = street_crops(args.street, limit=400, named=True)
    written = []
    for name, items in (("catalog", catalog), ("street", street)):
        path = args.out / f"2026-12-colour-{name}.png"
        contact_sheet(rng.sample(items, min(args.n, len(items)))).save(path, optimize=True)
        written.append(path)
        print(path, path.stat().st_size, "bytes")
    return written


if __name__ == "__main__":
    main()
