"""Drawn product pictures: one garment silhouette per category, coloured and patterned.

Pictures are catalog-style shots (one garment, plain light background, soft shadow) or a
"street photo" of an outfit (two garments on a person over a busy background). Drawing is a
pure function of the product (category, colour, pattern, ``variant``, ``image_version``) and the
view, so identical inputs give identical JPEG bytes.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from services.demo_shop.product import DemoProduct
from services.demo_shop.rng import seeded_rng
from services.demo_shop.vocabulary import COLOURS, VIEWS

RGB = tuple[int, int, int]
Point = tuple[float, float]

REFERENCE_SIZE = (400, 500)
"""Canvas the garment boxes below are proportioned for; other sizes scale uniformly."""

JPEG_QUALITY = 90


@dataclass(frozen=True)
class _Shape:
    kind: Literal["polygon", "ellipse", "ring"]
    points: tuple[Point, ...]
    width: float = 0.0
    """Stroke width of a ring, as a fraction of the box's smaller side."""


@dataclass(frozen=True)
class _Detail:
    kind: Literal["line", "dot"]
    points: tuple[Point, ...]
    width: float = 0.012
    tone: Literal["outline", "secondary"] = "outline"
    front_only: bool = True
    """Seams, buttons and pockets show only on the front; soles and hat bands everywhere."""


def _poly(*points: Point) -> _Shape:
    return _Shape("polygon", points)


def _line(
    *points: Point,
    width: float = 0.012,
    tone: Literal["outline", "secondary"] = "outline",
    front_only: bool = True,
) -> _Detail:
    return _Detail("line", points, width, tone, front_only)


def _dot(x: float, y: float, r: float = 0.018) -> _Detail:
    return _Detail("dot", ((x - r, y - r), (x + r, y + r)))


# Silhouettes in unit coordinates of the garment's box (x right, y down).
SILHOUETTES: dict[str, tuple[_Shape, ...]] = {
    "tops": (
        _poly(
            (0.36, 0.02),
            (0.20, 0.07),
            (0.00, 0.30),
            (0.13, 0.42),
            (0.24, 0.33),
            (0.24, 1.00),
            (0.76, 1.00),
            (0.76, 0.33),
            (0.87, 0.42),
            (1.00, 0.30),
            (0.80, 0.07),
            (0.64, 0.02),
            (0.58, 0.09),
            (0.50, 0.11),
            (0.42, 0.09),
        ),
    ),
    "outerwear": (
        _poly(
            (0.40, 0.00),
            (0.17, 0.06),
            (0.06, 0.30),
            (0.00, 0.86),
            (0.13, 0.88),
            (0.20, 0.42),
            (0.22, 1.00),
            (0.78, 1.00),
            (0.80, 0.42),
            (0.87, 0.88),
            (1.00, 0.86),
            (0.94, 0.30),
            (0.83, 0.06),
            (0.60, 0.00),
            (0.50, 0.20),
        ),
    ),
    "dresses": (
        _poly(
            (0.34, 0.00),
            (0.42, 0.00),
            (0.50, 0.08),
            (0.58, 0.00),
            (0.66, 0.00),
            (0.70, 0.16),
            (0.64, 0.36),
            (0.97, 1.00),
            (0.03, 1.00),
            (0.36, 0.36),
            (0.30, 0.16),
        ),
    ),
    "skirts": (
        _poly((0.22, 0.00), (0.78, 0.00), (0.80, 0.12), (1.00, 1.00), (0.00, 1.00), (0.20, 0.12)),
    ),
    "pants": (
        _poly(
            (0.12, 0.00),
            (0.88, 0.00),
            (0.97, 1.00),
            (0.56, 1.00),
            (0.50, 0.28),
            (0.44, 1.00),
            (0.03, 1.00),
        ),
    ),
    "footwear": (
        _poly(
            (0.03, 0.08),
            (0.30, 0.08),
            (0.40, 0.40),
            (0.70, 0.50),
            (0.90, 0.60),
            (0.99, 0.78),
            (0.98, 0.96),
            (0.03, 0.96),
        ),
    ),
    "bags": (
        _Shape("ring", ((0.22, 0.00), (0.78, 0.74)), width=0.07),
        _poly((0.08, 0.36), (0.92, 0.36), (1.00, 1.00), (0.00, 1.00)),
    ),
    "hats": (
        _Shape("ellipse", ((0.00, 0.62), (1.00, 1.00))),
        _poly(
            (0.24, 0.82),
            (0.28, 0.18),
            (0.40, 0.03),
            (0.50, 0.10),
            (0.60, 0.03),
            (0.72, 0.18),
            (0.76, 0.82),
        ),
    ),
}

DETAILS: dict[str, tuple[_Detail, ...]] = {
    "tops": (
        _line((0.36, 0.02), (0.42, 0.10), (0.50, 0.12), (0.58, 0.10), (0.64, 0.02)),
        _line((0.24, 0.95), (0.76, 0.95)),
        _line((0.05, 0.33), (0.15, 0.41)),
        _line((0.95, 0.33), (0.85, 0.41)),
    ),
    "outerwear": (
        _line((0.50, 0.20), (0.50, 1.00)),
        _line((0.40, 0.00), (0.45, 0.30)),
        _line((0.60, 0.00), (0.55, 0.30)),
        _line((0.27, 0.72), (0.40, 0.72)),
        _line((0.60, 0.72), (0.73, 0.72)),
        _dot(0.46, 0.36),
        _dot(0.46, 0.52),
        _dot(0.46, 0.68),
        _dot(0.46, 0.84),
    ),
    "dresses": (
        _line((0.36, 0.36), (0.64, 0.36), width=0.02),
        _line((0.44, 0.42), (0.30, 0.96)),
        _line((0.56, 0.42), (0.70, 0.96)),
    ),
    "skirts": (
        _line((0.20, 0.12), (0.80, 0.12), width=0.02),
        _line((0.36, 0.13), (0.26, 1.00)),
        _line((0.50, 0.13), (0.50, 1.00)),
        _line((0.64, 0.13), (0.74, 1.00)),
    ),
    "pants": (
        _line((0.12, 0.06), (0.88, 0.06), width=0.02),
        _line((0.50, 0.06), (0.50, 0.26)),
        _line((0.15, 0.07), (0.30, 0.18)),
        _line((0.85, 0.07), (0.70, 0.18)),
        _line((0.25, 0.20), (0.24, 1.00), width=0.006),
        _line((0.75, 0.20), (0.76, 1.00), width=0.006),
    ),
    "footwear": (
        _line((0.03, 0.93), (0.98, 0.93), width=0.08, front_only=False),
        _line((0.34, 0.28), (0.42, 0.22)),
        _line((0.38, 0.38), (0.47, 0.30)),
        _line((0.44, 0.44), (0.52, 0.36)),
        _line((0.03, 0.30), (0.28, 0.30), width=0.008),
    ),
    "bags": (
        _line((0.08, 0.37), (0.50, 0.62), (0.92, 0.37)),
        _dot(0.50, 0.63, 0.03),
        _line((0.10, 0.92), (0.90, 0.92), width=0.006),
    ),
    "hats": (_line((0.25, 0.68), (0.75, 0.68), width=0.09, tone="secondary", front_only=False),),
}

BOXES: dict[str, tuple[float, float]] = {
    "tops": (0.80, 0.62),
    "outerwear": (0.84, 0.86),
    "dresses": (0.66, 0.88),
    "skirts": (0.70, 0.56),
    "pants": (0.58, 0.88),
    "footwear": (0.84, 0.40),
    "bags": (0.66, 0.66),
    "hats": (0.80, 0.50),
}
"""Garment box per category as fractions of the 400x500 reference canvas."""


@dataclass(frozen=True)
class _Jitter:
    """Small per-picture variations; same product and image version, same jitter."""

    scale: float
    aspect: float
    dx: float
    dy: float
    rgb_shift: RGB
    period: int
    angle: int
    light_from_left: bool
    background: RGB

    @classmethod
    def of(cls, product: DemoProduct) -> _Jitter:
        rng = seeded_rng("image", product.variant, product.image_version)
        return cls(
            scale=rng.uniform(0.86, 1.0),
            aspect=rng.uniform(0.93, 1.07),
            dx=rng.uniform(-0.04, 0.04),
            dy=rng.uniform(-0.03, 0.03),
            rgb_shift=(rng.randint(-12, 12), rng.randint(-12, 12), rng.randint(-12, 12)),
            period=rng.randint(10, 20),
            angle=rng.choice((0, 0, 90, 45)),
            light_from_left=rng.random() < 0.5,
            background=_light_background(rng),
        )


def _light_background(rng: random.Random) -> RGB:
    level = rng.randint(236, 248)
    tint = rng.randint(-4, 4)
    return (level + tint, level, level - tint)


def _clamp(value: float) -> int:
    return max(0, min(255, round(value)))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        _clamp(a[0] + (b[0] - a[0]) * t),
        _clamp(a[1] + (b[1] - a[1]) * t),
        _clamp(a[2] + (b[2] - a[2]) * t),
    )


def _luminance(colour: RGB) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _palette(product: DemoProduct, jitter: _Jitter) -> tuple[RGB, RGB, RGB]:
    """Base colour (jittered), pattern's second colour, and outline colour."""
    raw = COLOURS[product.colour]
    base = (
        _clamp(raw[0] + jitter.rgb_shift[0]),
        _clamp(raw[1] + jitter.rgb_shift[1]),
        _clamp(raw[2] + jitter.rgb_shift[2]),
    )
    dark = _luminance(base) < 110
    secondary = _mix(base, (250, 250, 246), 0.6) if dark else _mix(base, (20, 20, 24), 0.5)
    outline = (
        _mix(base, (255, 255, 255), 0.25) if _luminance(base) < 50 else _mix(base, (0, 0, 0), 0.45)
    )
    return base, secondary, outline


def _pattern_fill(
    pattern: str, size: tuple[int, int], base: RGB, secondary: RGB, jitter: _Jitter
) -> np.ndarray:
    """An ``(h, w, 3)`` float array of the fabric: base colour with the pattern in ``secondary``."""
    width, height = size
    base_arr = np.array(base, dtype=np.float32)
    second_arr = np.array(secondary, dtype=np.float32)
    period = max(4, round(jitter.period * max(width, height) / 400))
    if pattern == "solid":
        on = np.zeros((height, width, 1), dtype=np.float32)
    elif pattern == "gradient":
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        on = np.broadcast_to(ramp, (height, width, 1))
    elif pattern == "stripes":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        theta = math.radians(jitter.angle)
        coord = yy * math.cos(theta) + xx * math.sin(theta)
        on = ((coord // (period / 2)) % 2).astype(np.float32)[..., None]
    elif pattern == "checks":
        yy, xx = np.mgrid[0:height, 0:width]
        cell = max(6, round(period * 1.3))
        on = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)[..., None] * 0.85
    elif pattern == "dots":
        dots = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(dots)
        step = max(8, round(period * 1.4))
        radius = step * 0.26
        for row, y in enumerate(range(step // 2, height + step, step)):
            offset = (step // 2) * (row % 2)
            for x in range(offset, width + step, step):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        on = (np.asarray(dots, dtype=np.float32) / 255.0)[..., None]
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    fabric = base_arr * (1.0 - on) + second_arr * on
    light = np.linspace(1.05, 0.85, width, dtype=np.float32)
    if not jitter.light_from_left:
        light = light[::-1]
    vertical = np.linspace(1.02, 0.94, height, dtype=np.float32)
    return np.asarray(fabric * light[None, :, None] * vertical[:, None, None], dtype=np.float32)


def _garment(
    product: DemoProduct,
    jitter: _Jitter,
    size: tuple[int, int],
    *,
    front: bool,
    supersample: int = 2,
) -> Image.Image:
    """The garment drawn into a box of ``size`` as an RGBA image (alpha = silhouette).

    The mask is drawn ``supersample`` times larger and shrunk, for smooth edges.
    """
    width, height = max(8, size[0]), max(8, size[1])
    big = (width * supersample, height * supersample)
    mask_big = Image.new("L", big, 0)
    draw = ImageDraw.Draw(mask_big)
    short_side = min(big)

    def to_px(point: Point) -> Point:
        return (point[0] * (big[0] - 1), point[1] * (big[1] - 1))

    for shape in SILHOUETTES[product.category]:
        points = [to_px(p) for p in shape.points]
        if shape.kind == "polygon":
            draw.polygon(points, fill=255)
        elif shape.kind == "ellipse":
            draw.ellipse((*points[0], *points[1]), fill=255)
        else:
            draw.ellipse(
                (*points[0], *points[1]), outline=255, width=max(2, round(shape.width * short_side))
            )
    mask = mask_big.resize((width, height), Image.Resampling.BOX)

    base, secondary, outline = _palette(product, jitter)
    fabric = _pattern_fill(product.pattern, (width, height), base, secondary, jitter)
    fill = Image.fromarray(np.clip(fabric, 0, 255).astype(np.uint8), "RGB")
    detail_draw = ImageDraw.Draw(fill)
    small_side = min(width, height)
    for detail in DETAILS[product.category]:
        if detail.front_only and not front:
            continue
        colour = outline if detail.tone == "outline" else secondary
        points = [(x * (width - 1), y * (height - 1)) for x, y in detail.points]
        if detail.kind == "dot":
            detail_draw.ellipse((*points[0], *points[1]), fill=colour)
        else:
            detail_draw.line(
                points, fill=colour, width=max(1, round(detail.width * small_side)), joint="curve"
            )

    layer = Image.new("RGB", (width, height), outline)
    stroke = 3 if small_side < 300 else 5
    layer.paste(fill, mask=mask.filter(ImageFilter.MinFilter(stroke)))
    garment = layer.convert("RGBA")
    garment.putalpha(mask)
    return garment if front else ImageOps.mirror(garment)


def _garment_box(category: str, canvas: tuple[int, int], jitter: _Jitter) -> tuple[int, int]:
    unit = min(canvas[0] / REFERENCE_SIZE[0], canvas[1] / REFERENCE_SIZE[1])
    frac_w, frac_h = BOXES[category]
    width = frac_w * REFERENCE_SIZE[0] * unit * jitter.scale * jitter.aspect
    height = frac_h * REFERENCE_SIZE[1] * unit * jitter.scale / jitter.aspect
    return min(round(width), round(canvas[0] * 0.96)), min(round(height), round(canvas[1] * 0.96))


def _studio_shot(product: DemoProduct, size: tuple[int, int], view: str) -> Image.Image:
    """Catalog shot on a plain light background; ``detail`` is a 2x close-up without shadow."""
    jitter = _Jitter.of(product)
    width, height = size
    top = jitter.background
    ramp = Image.linear_gradient("L").resize(size)
    background = Image.composite(
        Image.new("RGB", size, _mix(top, (200, 200, 200), 0.25)), Image.new("RGB", size, top), ramp
    )
    zoom = 2.0 if view == "detail" else 1.0
    box_w, box_h = _garment_box(product.category, size, jitter)
    box_w, box_h = round(box_w * zoom), round(box_h * zoom)
    garment = _garment(
        product, jitter, (box_w, box_h), front=view != "back", supersample=1 if zoom > 1 else 2
    )
    cx = width / 2 + jitter.dx * width
    cy = height / 2 + jitter.dy * height
    if zoom == 1.0:
        x0 = round(min(max(cx - box_w / 2, 0), width - box_w))
        y0 = round(min(max(cy - box_h / 2, 0), height - box_h))
        background = _with_shadow(background, garment.getchannel("A"), (x0, y0))
    else:
        x0, y0 = round(cx - box_w / 2), round(cy - box_h / 2)
    background.paste(garment, (x0, y0), garment)
    return background


def _with_shadow(background: Image.Image, alpha: Image.Image, at: tuple[int, int]) -> Image.Image:
    """A soft drop shadow of ``alpha`` (blurred at quarter resolution: cheap and soft)."""
    size = background.size
    offset = max(2, round(min(size) * 0.015))
    shadow = Image.new("L", size, 0)
    shadow.paste(alpha.point(lambda v: v * 45 // 255), (at[0] + offset, at[1] + 2 * offset))
    small = shadow.resize((max(1, size[0] // 4), max(1, size[1] // 4)), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(max(1.0, offset / 2)))
    shadow = small.resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, (70, 70, 70)), background, shadow)


def _to_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def render_image(
    product: DemoProduct, view: str = "front", size: tuple[int, int] = (400, 500)
) -> bytes:
    """JPEG picture of ``product`` seen from ``view`` (``front``, ``back`` or ``detail``).

    ``back`` is the mirrored garment without front details; ``detail`` is a 2x close-up of
    the front around the garment's centre.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    if size[0] < 16 or size[1] < 16:
        raise ValueError(f"image size {size} is too small")
    return _to_jpeg(_studio_shot(product, size, view))


@dataclass(frozen=True)
class GarmentBox:
    """Where a garment is visible in an outfit photo: ``box`` is ``(x0, y0, x1, y1)``, x1/y1
    exclusive, in pixels."""

    sku: str
    category: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class OutfitPhoto:
    jpeg: bytes
    size: tuple[int, int]
    boxes: tuple[GarmentBox, ...]
    """Top garment first, then bottom."""


_SKIN_TONES: tuple[RGB, ...] = (
    (241, 204, 178),
    (224, 172, 135),
    (190, 134, 96),
    (141, 92, 62),
    (92, 60, 42),
)


def _street_background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    width, height = size
    wall = (rng.randint(90, 190), rng.randint(80, 180), rng.randint(70, 170))
    image = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(image)
    pavement_y = round(height * rng.uniform(0.78, 0.86))
    cell_w, cell_h = rng.randint(60, 110), rng.randint(70, 120)
    window = _mix(wall, (30, 40, 60), rng.uniform(0.4, 0.7))
    for y in range(rng.randint(-20, 20), pavement_y - 30, cell_h):
        for x in range(rng.randint(-30, 10), width, cell_w):
            draw.rectangle((x + 10, y + 10, x + cell_w - 14, y + cell_h - 18), fill=window)
    draw.rectangle((0, pavement_y, width, height), fill=_mix(wall, (120, 120, 120), 0.7))
    for x in range(rng.randint(-40, 0), width + height, rng.randint(40, 70)):
        draw.line((x, pavement_y, x - 80, height), fill=(95, 95, 95), width=2)
    for _ in range(rng.randint(6, 12)):
        cx, cy, r = rng.randint(0, width), rng.randint(0, pavement_y), rng.randint(10, 50)
        colour = (rng.randint(40, 220), rng.randint(40, 220), rng.randint(40, 220))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.rectangle((cx - r, cy - 2 * r, cx + r // 2, cy + r), fill=colour)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 7.0, (height, width, 1))
    pixels = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _scaled_box(category: str, reference: str, target: tuple[float, float]) -> tuple[int, int]:
    """Box of ``category`` in proportion to ``reference`` drawn at ``target`` pixels."""
    frac_w, frac_h = BOXES[category]
    ref_w, ref_h = BOXES[reference]
    return max(8, round(target[0] * frac_w / ref_w)), max(8, round(target[1] * frac_h / ref_h))


def compose_outfit(
    top: DemoProduct,
    bottom: DemoProduct,
    size: tuple[int, int] = (480, 640),
    *,
    seed: int = 0,
) -> OutfitPhoto:
    """A street photo of a person wearing ``top`` above ``bottom``, with garment boxes.

    Any two categories work (the top goes in the upper part, the bottom under it), but
    ``tops``/``outerwear``/``dresses`` over ``pants``/``skirts`` look like real outfits.
    """
    width, height = size
    if width < 64 or height < 64:
        raise ValueError(f"outfit size {size} is too small")
    rng = seeded_rng("outfit", top.sku, top.image_version, bottom.sku, bottom.image_version, seed)
    canvas = _street_background(rng, size)
    draw = ImageDraw.Draw(canvas)
    cx = width / 2 + rng.uniform(-0.06, 0.06) * width
    skin = rng.choice(_SKIN_TONES)

    top_jitter, bottom_jitter = _Jitter.of(top), _Jitter.of(bottom)
    top_w, top_h = _scaled_box(top.category, "tops", (0.56 * width, 0.36 * height))
    top_y = round(0.15 * height)
    bottom_y = top_y + round(top_h * 0.85)
    bottom_w, bottom_h = _scaled_box(bottom.category, "pants", (0.40 * width, 0.50 * height))
    bottom_h = max(8, min(bottom_h, round(0.97 * height) - bottom_y))

    leg_w = max(4, round(bottom_w * 0.16))
    feet_y = round(0.95 * height)
    for side in (-1, 1):
        leg_x = cx + side * bottom_w * 0.22
        draw.rectangle(
            (leg_x - leg_w / 2, bottom_y + bottom_h * 0.5, leg_x + leg_w / 2, feet_y), fill=skin
        )
        draw.ellipse(
            (leg_x - leg_w, feet_y - leg_w * 0.5, leg_x + leg_w * 1.2, feet_y + leg_w * 0.6),
            fill=(30, 28, 30),
        )

    bottom_img = _garment(bottom, bottom_jitter, (bottom_w, bottom_h), front=True)
    bottom_at = (round(cx - bottom_w / 2), bottom_y)
    canvas.paste(bottom_img, bottom_at, bottom_img)

    arm_w = max(4, round(top_w * 0.09))
    for side in (-1, 1):
        shoulder = (cx + side * top_w * 0.38, top_y + top_h * 0.3)
        hand = (cx + side * top_w * 0.47, top_y + top_h * 1.05)
        draw.line((shoulder, hand), fill=skin, width=arm_w)
        draw.ellipse(
            (
                hand[0] - arm_w * 0.7,
                hand[1] - arm_w * 0.7,
                hand[0] + arm_w * 0.7,
                hand[1] + arm_w * 0.7,
            ),
            fill=skin,
        )
    neck_w = top_w * 0.08
    draw.rectangle(
        (cx - neck_w, top_y - 0.04 * height, cx + neck_w, top_y + top_h * 0.25), fill=skin
    )

    top_img = _garment(top, top_jitter, (top_w, top_h), front=True)
    top_at = (round(cx - top_w / 2), top_y)
    canvas.paste(top_img, top_at, top_img)

    head_r = 0.055 * height
    head_cy = top_y - 0.04 * height - head_r * 0.85
    draw.ellipse(
        (cx - head_r * 0.82, head_cy - head_r, cx + head_r * 0.82, head_cy + head_r), fill=skin
    )
    hair = rng.choice(((30, 22, 18), (90, 60, 30), (200, 170, 110), (60, 60, 60)))
    draw.chord(
        (cx - head_r * 0.86, head_cy - head_r * 1.05, cx + head_r * 0.86, head_cy + head_r * 0.5),
        180,
        360,
        fill=hair,
    )

    top_mask = Image.new("L", size, 0)
    top_mask.paste(top_img.getchannel("A"), top_at)
    bottom_mask = Image.new("L", size, 0)
    bottom_mask.paste(bottom_img.getchannel("A"), bottom_at)
    visible_bottom = ImageChops.subtract(bottom_mask, top_mask)
    boxes = tuple(
        GarmentBox(product.sku, product.category, _solid_bbox(mask))
        for product, mask in ((top, top_mask), (bottom, visible_bottom))
    )
    return OutfitPhoto(jpeg=_to_jpeg(canvas), size=size, boxes=boxes)


def _solid_bbox(mask: Image.Image) -> tuple[int, int, int, int]:
    bbox = mask.point(lambda v: 255 if v >= 128 else 0).getbbox()
    return bbox if bbox is not None else (0, 0, 0, 0)


def render_outfit(
    top: DemoProduct, bottom: DemoProduct, size: tuple[int, int] = (480, 640), *, seed: int = 0
) -> bytes:
    """JPEG street photo of ``top`` worn above ``bottom``; see :func:`compose_outfit`."""
    return compose_outfit(top, bottom, size, seed=seed).jpeg
