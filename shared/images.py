"""The project's one Pillow wrapper: safe decoding, colour normalisation and geometry.

Downloaded product images and shopper uploads are untrusted, so :func:`load_image` and
:func:`probe_image` only accept formats recognised by their magic bytes (JPEG, PNG, GIF, WebP,
BMP, TIFF), check byte and pixel limits before decoding, and translate every Pillow failure into
the typed errors below. Nothing here changes Pillow's global settings.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from shared.errors import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "WORK_SIDE",
    "ImageError",
    "ImageInfo",
    "ImageSource",
    "ImageTooLargeError",
    "NotAnImageError",
    "TruncatedImageError",
    "UnsupportedImageModeError",
    "average_hash",
    "content_hash",
    "crop_box",
    "gaussian_blur",
    "load_image",
    "load_work_image",
    "probe_image",
    "resize_center_crop",
    "sniff_image_format",
    "thumbnail_bytes",
    "to_array",
    "to_rgb",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
SUPPORTED_FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "tiff")
WORK_SIDE = 768
"""Photos to detect and crop in decode in JPEG draft mode to at least this many pixels a side:
enough for the detector and for crops, and several times cheaper than a full decode."""

ImageSource: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


# --------------------------------------------------------------------------------------- errors


class ImageError(InvalidInputError):
    """Base class for images we cannot use (422 unless a subclass says otherwise)."""

    code = "invalid_image"


class NotAnImageError(UnsupportedMediaTypeError, ImageError):
    """The bytes are not an image in a supported format (415)."""


class TruncatedImageError(ImageError):
    """The data claims to be an image but is truncated or corrupt."""

    code = "corrupt_image"


class ImageTooLargeError(PayloadTooLargeError, ImageError):
    """Too many bytes, or too many pixels (decompression-bomb protection) (413)."""

    code = "image_too_large"


class UnsupportedImageModeError(ImageError):
    """The image decoded, but its pixel mode cannot be turned into RGB."""

    code = "unsupported_image_mode"


# What Pillow raises on bad input: plugins use OSError (incl. UnidentifiedImageError and
# "image file is truncated"), SyntaxError ("broken PNG file"), ValueError, EOFError,
# struct.error, zlib.error, and sometimes IndexError/KeyError/TypeError from header parsing.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
)

# Pillow plugin ids per sniffed format; phone JPEGs often open as MPO.
_PIL_FORMATS: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG", "MPO"),
    "png": ("PNG",),
    "gif": ("GIF",),
    "webp": ("WEBP",),
    "bmp": ("BMP",),
    "tiff": ("TIFF",),
}

_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_TIFF_PREFIXES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255)


# ------------------------------------------------------------------------------------ sniffing


def sniff_image_format(data: bytes) -> str | None:
    """Return ``jpeg``/``png``/``gif``/``webp``/``bmp``/``tiff`` from magic bytes, else None.

    Independent of any Content-Type header or file name.
    """
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if (
        head[:2] == b"BM"
        and len(head) >= 18
        and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES
    ):
        return "bmp"
    if head[:4] in _TIFF_PREFIXES:
        return "tiff"
    return None


def _describe_non_image(data: bytes) -> str:
    """A short human description of bytes that are not a supported image."""
    if not data:
        return "no data (0 bytes)"
    head = bytes(data[:512])
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<"):
        if b"<svg" in text:
            return "looks like an SVG document"
        if b"<html" in text or b"<!doctype html" in text:
            return "looks like an HTML page"
        return "looks like XML or other markup"
    signatures = (
        (b"PK\x03\x04", "looks like a ZIP archive"),
        (b"%PDF", "looks like a PDF document"),
        (b"\x00\x00\x01\x00", "looks like an ICO icon, which is not supported"),
        (b"\x00\x00\x02\x00", "looks like a CUR cursor, which is not supported"),
        (b"\x1f\x8b", "looks like gzip-compressed data"),
    )
    for magic, description in signatures:
        if head.startswith(magic):
            return description
    if head[4:8] == b"ftyp":
        return "looks like HEIC/AVIF/MP4 (ISO media), which is not supported"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head[:64]):
        return "looks like text"
    return f"unrecognised bytes starting with 0x{head[:8].hex()}"


def _not_an_image(data: bytes) -> NotAnImageError:
    return NotAnImageError(
        f"data is not a supported image ({_describe_non_image(data)}); "
        f"supported formats: {', '.join(SUPPORTED_FORMATS)}"
    )


# ----------------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says, without decoding pixels. Sizes are as stored (before EXIF)."""

    format: str
    width: int
    height: int
    mode: str
    n_bytes: int


def _check_limits(max_bytes: int, max_pixels: int) -> None:
    if max_bytes <= 0:
        raise InvalidInputError(f"max_bytes must be positive, got {max_bytes}")
    if max_pixels <= 0:
        raise InvalidInputError(f"max_pixels must be positive, got {max_pixels}")


def _too_many_bytes(n_bytes: int, max_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"image is {n_bytes} bytes, the limit is {max_bytes}")


def _read_source(source: ImageSource, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` from bytes, a path or a binary stream."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_many_bytes(len(data), max_bytes)
        return data
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            with path.open("rb") as fh:
                return _read_stream(fh, max_bytes)
        except FileNotFoundError as exc:
            raise NotFoundError(f"image file not found: {path}") from exc
        except OSError as exc:
            raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    if not callable(getattr(source, "read", None)):
        raise InvalidInputError(
            f"image source must be bytes, a path or a binary file, got {type(source).__name__}"
        )
    return _read_stream(source, max_bytes)


def _read_stream(stream: BinaryIO, max_bytes: int) -> bytes:
    buffer = bytearray()
    while True:
        chunk = stream.read(min(1 << 20, max_bytes + 1 - len(buffer)))
        if not chunk:
            return bytes(buffer)
        if not isinstance(chunk, bytes | bytearray):
            raise InvalidInputError("image stream must be opened in binary mode")
        buffer += chunk
        if len(buffer) > max_bytes:
            raise ImageTooLargeError(f"image is larger than the limit of {max_bytes} bytes")


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's warnings while decoding untrusted data.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (our own ``max_pixels`` check replaces that)
    and about corrupt metadata (we raise a typed error when the damage matters). On Python < 3.14
    ``catch_warnings`` is process-wide for the duration of the block; it only ever adds "ignore"
    filters here, so a race with another thread can at worst leave one of them in place.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _bomb_error(exc: BaseException, max_pixels: int) -> ImageTooLargeError:
    """Translate Pillow's DecompressionBombError, which fires before we see ``img.size``."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(match.group(1))} pixels" if match else "too many pixels"
    hard_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else max_pixels
    return ImageTooLargeError(f"image has {pixels}, the limit is {min(max_pixels, hard_limit)}")


def _open_header(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    """Open (header only) and check limits; the caller closes the returned image."""
    _check_limits(max_bytes, max_pixels)
    if len(data) > max_bytes:
        raise _too_many_bytes(len(data), max_bytes)
    fmt = sniff_image_format(data)
    if fmt is None:
        raise _not_an_image(data)
    try:
        with _quiet_pillow():
            img = Image.open(io.BytesIO(data), formats=_PIL_FORMATS[fmt])
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise TruncatedImageError(
            f"data starts like a {fmt} image but its header is corrupt or truncated"
        ) from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise TruncatedImageError(f"{fmt} header declares an empty image ({width}x{height})")
    if width * height > max_pixels:
        img.close()
        raise ImageTooLargeError(
            f"image has {width * height} pixels ({width}x{height}), the limit is {max_pixels}"
        )
    return img, fmt


def probe_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageInfo:
    """Check format and limits from the header only (no pixel decode); raise an ImageError."""
    img, fmt = _open_header(bytes(data), max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        return ImageInfo(fmt, img.width, img.height, img.mode, len(data))
    finally:
        img.close()


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1


def _check_draft(draft: object) -> tuple[int, int]:
    if (
        not isinstance(draft, tuple)
        or len(draft) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in draft)
    ):
        raise InvalidInputError(f"draft must be a (width, height) of positive ints, got {draft!r}")
    return draft[0], draft[1]


def load_image(
    source: ImageSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an untrusted image into a fully loaded RGB image, EXIF orientation applied.

    ``draft=(w, h)`` lets a JPEG decode at 1/2, 1/4 or 1/8 scale while staying at least
    ``w`` x ``h`` (in display orientation), or at its full size if that is smaller; other formats
    ignore it. Raises :class:`NotAnImageError`, :class:`TruncatedImageError`,
    :class:`ImageTooLargeError` or :class:`UnsupportedImageModeError`.
    """
    draft_size = _check_draft(draft) if draft is not None else None
    _check_limits(max_bytes, max_pixels)
    data = _read_source(source, max_bytes)
    img, fmt = _open_header(data, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        try:
            with _quiet_pillow():
                if draft_size is not None and fmt == "jpeg":
                    width, height = draft_size
                    if _orientation(img) in _TRANSPOSED_ORIENTATIONS:
                        width, height = height, width
                    img.draft("RGB", (width, height))
                img.load()
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc, max_pixels) from exc
        except _DECODE_ERRORS as exc:
            raise TruncatedImageError(f"{fmt} image data is truncated or corrupt: {exc}") from exc
        try:
            with _quiet_pillow():
                oriented = ImageOps.exif_transpose(img)
        except _DECODE_ERRORS:
            # Broken EXIF should not cost us a usable product image.
            oriented = img
        rgb = to_rgb(oriented)
        # The result must not share the object we close below.
        return rgb.copy() if rgb is img else rgb
    finally:
        img.close()


def load_work_image(
    data: bytes, *, max_bytes: int, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    """A photo to detect garments on and crop: decoded as :func:`load_image` with
    ``draft=(WORK_SIDE, WORK_SIDE)``, and the original ``(width, height)`` in display
    orientation (boxes found on the smaller image are reported in those pixels)."""
    header = probe_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    image = load_image(
        data, max_bytes=max_bytes, max_pixels=max_pixels, draft=(WORK_SIDE, WORK_SIDE)
    )
    width, height = header.width, header.height
    if (image.width >= image.height) != (width >= height):
        width, height = height, width  # EXIF rotated it by 90 degrees
    return image, (width, height)


# ------------------------------------------------------------------------------------- colour

_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_CONVERTIBLE_MODES = frozenset({"1", "L", "P", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Map a 16/32-bit integer or float image linearly from its min..max onto 0..255 (L)."""
    values = np.asarray(img).astype(np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("L", img.size, 0)
    lo = float(values[finite].min())
    hi = float(values[finite].max())
    if not finite.all():
        values = np.where(np.isposinf(values), hi, np.where(finite, values, lo))
    if hi > lo:
        values -= lo
        values *= 255.0 / (hi - lo)
    else:  # constant image: keep its value where it fits 8 bits
        values = np.full_like(values, min(max(lo, 0.0), 255.0))
    return Image.fromarray(np.rint(values).astype(np.uint8))


def _flatten_on_white(rgba: Image.Image) -> Image.Image:
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an RGB version of ``img`` (``img`` itself if it is already plain RGB).

    Transparent pixels become white; 16/32-bit and float images are stretched from their
    actual min..max onto 0..255.
    """
    mode = img.mode
    try:
        if mode in _HIGH_DEPTH_MODES:
            return _scale_to_8bit(img).convert("RGB")
        if img.has_transparency_data:
            if mode == "La":  # Pillow converts premultiplied La only to LA
                img = img.convert("LA")
            return _flatten_on_white(img if img.mode == "RGBA" else img.convert("RGBA"))
        if mode == "RGB":
            return img
        if mode in _CONVERTIBLE_MODES:
            return img.convert("RGB")
    except ValueError as exc:
        raise UnsupportedImageModeError(
            f"cannot convert an image in mode {mode} to RGB: {exc}"
        ) from exc
    raise UnsupportedImageModeError(f"image mode {mode} is not supported")


# ----------------------------------------------------------------------------------- geometry


def crop_box(
    img: Image.Image, box: tuple[float, float, float, float], *, margin: float = 0.0
) -> Image.Image:
    """Crop a pixel ``(x0, y0, x1, y1)`` box grown by ``margin`` x its size on each side.

    The box is clamped to the image; an empty, inverted or fully outside box raises
    :class:`InvalidInputError`.
    """
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise InvalidInputError(f"box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
    if not math.isfinite(margin) or margin < 0:
        raise InvalidInputError(f"margin must be a finite number >= 0, got {margin!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise InvalidInputError(f"box {box!r} is empty or inverted")
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    left = max(0, math.floor(x0 - dx))
    top = max(0, math.floor(y0 - dy))
    right = min(img.width, math.ceil(x1 + dx))
    bottom = min(img.height, math.ceil(y1 + dy))
    if right <= left or bottom <= top:
        raise InvalidInputError(f"box {box!r} lies outside the {img.width}x{img.height} image")
    return img.crop((left, top, right, bottom))


def resize_center_crop(
    img: Image.Image,
    resize: int = 256,
    crop: int = 224,
    *,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Scale the shorter side to ``resize`` (aspect kept), then take the central ``crop`` square."""
    if resize <= 0 or crop <= 0:
        raise InvalidInputError(f"resize and crop must be positive, got {resize} and {crop}")
    if crop > resize:
        raise InvalidInputError(f"crop ({crop}) must not exceed resize ({resize})")
    width, height = img.size
    scale = resize / min(width, height)
    new_size = (
        resize if width <= height else max(resize, round(width * scale)),
        resize if height <= width else max(resize, round(height * scale)),
    )
    resized = img.resize(new_size, resample) if new_size != img.size else img
    left = round((new_size[0] - crop) / 2)
    top = round((new_size[1] - crop) / 2)
    return resized.crop((left, top, left + crop, top + crop))


def gaussian_blur(img: Image.Image, radius: float) -> Image.Image:
    """Gaussian-blur ``img`` with the given radius (0 returns a copy)."""
    if not math.isfinite(radius) or radius < 0:
        raise InvalidInputError(f"blur radius must be a finite number >= 0, got {radius!r}")
    if radius == 0:
        return img.copy()
    try:
        return img.filter(ImageFilter.GaussianBlur(radius))
    except ValueError as exc:
        raise UnsupportedImageModeError(f"cannot blur an image in mode {img.mode}") from exc


# ------------------------------------------------------------------------------------- output


def _per_channel(name: str, values: Sequence[float], channels: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.size != channels or not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{name} must be {channels} finite numbers (one per channel), got {values!r}"
        )
    return arr.reshape(channels, 1, 1)


def to_array(
    img: Image.Image,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Return a float32 CHW array in [0, 1], then ``(x - mean) / std`` per channel if given.

    ``L`` images give one channel; every other mode goes through :func:`to_rgb` (3 channels).
    """
    if img.mode not in ("L", "RGB"):
        img = to_rgb(img)
    pixels = np.asarray(img)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    arr = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
    arr *= np.float32(1 / 255)
    if mean is not None:
        arr -= _per_channel("mean", mean, channels)
    if std is not None:
        std_arr = _per_channel("std", std, channels)
        if (std_arr == 0).any():
            raise InvalidInputError(f"std must not contain zeros, got {std!r}")
        arr /= std_arr
    return arr


_THUMBNAIL_FORMATS = {"JPEG": "JPEG", "JPG": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
_THUMBNAIL_MODES = {
    "JPEG": frozenset({"RGB", "L"}),
    "PNG": frozenset({"RGB", "RGBA", "L", "LA"}),
    "WEBP": frozenset({"RGB", "RGBA"}),
}


def thumbnail_bytes(
    img: Image.Image, max_side: int = 256, *, format: str = "JPEG", quality: int = 85
) -> bytes:
    """Encode a thumbnail no larger than ``max_side`` on either side (aspect kept, no upscale).

    ``format`` is JPEG, PNG or WEBP; JPEG flattens transparency onto white. No metadata is kept.
    """
    fmt = _THUMBNAIL_FORMATS.get(format.upper())
    if fmt is None:
        raise InvalidInputError(f"thumbnail format must be JPEG, PNG or WEBP, got {format!r}")
    if max_side <= 0:
        raise InvalidInputError(f"max_side must be positive, got {max_side}")
    if not 1 <= quality <= 100:
        raise InvalidInputError(f"quality must be between 1 and 100, got {quality}")
    if img.mode not in _THUMBNAIL_MODES[fmt]:
        img = to_rgb(img) if fmt == "JPEG" or not img.has_transparency_data else _to_rgba(img)
    thumb = img.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    thumb.save(out, fmt, quality=quality)
    return out.getvalue()


def _to_rgba(img: Image.Image) -> Image.Image:
    try:
        return (img.convert("LA") if img.mode == "La" else img).convert("RGBA")
    except ValueError as exc:
        raise UnsupportedImageModeError(f"cannot convert mode {img.mode} to RGBA") from exc


# ------------------------------------------------------------------------------------ hashing


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of the raw bytes (deduplicates identical downloads)."""
    return hashlib.sha256(data).hexdigest()


def average_hash(img: Image.Image, *, hash_size: int = 8) -> str:
    """Perceptual average hash as hex (``hash_size**2`` bits); near duplicates differ in few."""
    if hash_size < 2:
        raise InvalidInputError(f"hash_size must be at least 2, got {hash_size}")
    small = to_rgb(img).convert("L").resize((hash_size, hash_size), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float32)
    bits = (pixels > pixels.mean()).reshape(-1)
    value = int("".join("1" if b else "0" for b in bits), 2)
    return f"{value:0{(hash_size * hash_size + 3) // 4}x}"
