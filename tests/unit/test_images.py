"""Tests for shared.images: every pixel mode through real encoders, hostile files, geometry."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from shared.errors import InvalidInputError, LookalikeError, NotFoundError
from shared.images import (
    ImageError,
    ImageInfo,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageModeError,
    average_hash,
    content_hash,
    crop_box,
    gaussian_blur,
    load_image,
    load_work_image,
    probe_image,
    resize_center_crop,
    sniff_image_format,
    thumbnail_bytes,
    to_array,
    to_rgb,
)

# Any warning from Pillow reaching the caller is a bug: turn them into failures here.
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("error")]

WHITE = (255, 255, 255)
RED = (255, 0, 0)


# ------------------------------------------------------------------------------------ helpers


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_with_header(width: int, height: int, *, bad_crc: bool = False) -> bytes:
    """A tiny PNG whose IHDR declares width x height (8-bit RGB) with one small IDAT."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if bad_crc:
        ihdr = ihdr[:-4] + bytes(4)
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + png_chunk(b"IEND", b"")


def half_transparent(mode_after: str) -> Image.Image:
    """8x4 RGBA: left half fully transparent black, right half opaque red."""
    img = Image.new("RGBA", (8, 4), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (4, 0, 8, 4))
    return img.convert(mode_after) if mode_after != "RGBA" else img


def assert_left_white(rgb: Image.Image) -> None:
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((3, 3)) == WHITE


def ramp16(mode: str = "I;16", width: int = 256, height: int = 4) -> Image.Image:
    """A 0..65535 horizontal ramp in a 16-bit mode (built from bytes: convert() clips)."""
    row = np.linspace(0, 65535, width).round()
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (width, height), np.tile(row, (height, 1)).astype(dtype).tobytes())


def extremes(img: Image.Image) -> tuple[int, int]:
    arr = np.asarray(img)
    return int(arr.min()), int(arr.max())


# ------------------------------------------------------------------------- modes via encoders


def test_mode_1_png() -> None:
    img = Image.new("1", (8, 8), 0)
    img.paste(1, (0, 0, 4, 8))
    out = load_image(encode(img, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == WHITE
    assert out.getpixel((7, 7)) == (0, 0, 0)


def test_mode_l_png_keeps_grey_levels() -> None:
    img = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (2, 1)))
    out = load_image(encode(img, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((5, 1)) == (80, 80, 80)


@pytest.mark.parametrize(("mode", "fmt"), [("LA", "PNG"), ("RGBA", "PNG"), ("PA", "TIFF")])
def test_alpha_modes_become_white(mode: str, fmt: str) -> None:
    src = half_transparent(mode)
    out = load_image(encode(src, fmt))
    assert_left_white(out)
    expected = (76, 76, 76) if mode == "LA" else RED  # LA keeps the red's luma
    assert out.getpixel((6, 2)) == expected


def test_webp_with_alpha() -> None:
    out = load_image(encode(half_transparent("RGBA"), "WEBP", lossless=True))
    assert_left_white(out)
    assert out.getpixel((6, 2)) == RED


def test_palette_without_transparency() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([255, 0, 0, 0, 0, 255])
    out = load_image(encode(img, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == RED


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_index(fmt: str) -> None:
    img = Image.new("P", (8, 4), 1)
    img.putpalette([255, 0, 0, 0, 0, 0])
    img.paste(0, (4, 0, 8, 4))
    data = encode(img, fmt, transparency=1)
    assert Image.open(io.BytesIO(data)).info["transparency"] == 1
    out = load_image(data)
    assert_left_white(out)
    assert out.getpixel((6, 2)) == RED


def test_palette_per_entry_alpha_png() -> None:
    img = Image.new("P", (8, 4), 1)
    img.putpalette([255, 0, 0, 0, 0, 0])
    img.paste(0, (4, 0, 8, 4))
    out = load_image(encode(img, "PNG", transparency=b"\xff\x00"))
    assert_left_white(out)
    assert out.getpixel((6, 2)) == RED


def test_rgb_png_colour_key_transparency() -> None:
    img = Image.new("RGB", (8, 4), (0, 0, 0))
    img.paste(RED, (4, 0, 8, 4))
    out = load_image(encode(img, "PNG", transparency=(0, 0, 0)))
    assert_left_white(out)
    assert out.getpixel((6, 2)) == RED


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16_bit_scaled_not_clipped(mode: str, fmt: str) -> None:
    img = ramp16(mode)
    assert img.mode == mode
    decoded = Image.open(io.BytesIO(encode(img, fmt)))
    assert decoded.mode.startswith("I;16")
    out = load_image(encode(img, fmt))
    assert out.mode == "RGB"
    assert extremes(out) == (0, 255)
    grey = np.asarray(out)[0, :, 0].astype(int)
    assert (np.diff(grey) >= 0).all()  # monotone ramp
    assert abs(grey[128] - 128) <= 1


def test_int32_tiff_with_negative_values() -> None:
    arr = np.linspace(-100_000, 300_000, 64).astype(np.int32).reshape(4, 16)
    img = Image.fromarray(arr)
    assert img.mode == "I"
    out = load_image(encode(img, "TIFF"))
    assert extremes(out) == (0, 255)


def test_float_tiff_scaled_by_range() -> None:
    arr = np.linspace(-1.0, 3.0, 64, dtype=np.float32).reshape(4, 16)
    img = Image.fromarray(arr)
    assert img.mode == "F"
    out = load_image(encode(img, "TIFF"))
    assert extremes(out) == (0, 255)
    assert np.asarray(out)[0, 0, 0] == 0


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_cmyk(fmt: str) -> None:
    img = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan
    out = load_image(encode(img, fmt, quality=95) if fmt == "JPEG" else encode(img, fmt))
    r, g, b = cast(tuple[int, int, int], out.getpixel((8, 8)))
    assert out.mode == "RGB"
    assert r < 20 and g > 235 and b > 235


def test_ycbcr_jpeg() -> None:
    img = Image.new("RGB", (16, 16), (200, 30, 40)).convert("YCbCr")
    out = load_image(encode(img, "JPEG", quality=95))
    px = np.asarray(out.getpixel((8, 8)), dtype=int)
    assert out.mode == "RGB"
    assert np.abs(px - (200, 30, 40)).max() <= 6


def test_lab_tiff() -> None:
    img = Image.new("RGB", (8, 8), (200, 30, 40)).convert("LAB")
    assert Image.open(io.BytesIO(encode(img, "TIFF"))).mode == "LAB"
    out = load_image(encode(img, "TIFF"))
    px = np.asarray(out.getpixel((4, 4)), dtype=int)
    assert np.abs(px - (200, 30, 40)).max() <= 4


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = load_image(data)
    assert out.mode == "RGB"
    assert out.getpixel((4, 4)) == RED


# ------------------------------------------------------------------------ modes in memory only


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_alpha_in_memory(mode: str) -> None:
    src = half_transparent("RGBA" if mode == "RGBa" else "LA").convert(mode)
    out = to_rgb(src)
    assert_left_white(out)


@pytest.mark.parametrize("mode", ["HSV", "RGBX", "YCbCr", "LAB", "CMYK", "1", "L", "P"])
def test_plain_modes_in_memory(mode: str) -> None:
    out = to_rgb(Image.new("RGB", (4, 4), RED).convert(mode))
    assert out.mode == "RGB"
    assert out.size == (4, 4)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16N", "I;16B"])
def test_16_bit_in_memory(mode: str) -> None:
    grey = np.asarray(to_rgb(ramp16(mode)))[0, :, 0].astype(int)
    assert (grey.min(), grey.max()) == (0, 255)
    assert abs(grey[128] - 128) <= 1


def test_float_with_non_finite_values() -> None:
    arr = np.array([[np.nan, 0.0, 0.5, 1.0, np.inf, -np.inf]], dtype=np.float32)
    out = np.asarray(to_rgb(Image.fromarray(arr)))[0, :, 0]
    assert list(out) == [0, 0, 128, 255, 255, 0]


def test_constant_high_depth_image() -> None:
    out = to_rgb(Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)))
    assert out.mode == "RGB"
    assert extremes(out) == (255, 255)


def test_to_rgb_returns_rgb_as_is() -> None:
    img = Image.new("RGB", (2, 2))
    assert to_rgb(img) is img


def test_unsupported_mode() -> None:
    class Weird:
        mode = "BGR;24"
        has_transparency_data = False

    with pytest.raises(UnsupportedImageModeError, match="BGR;24") as info:
        to_rgb(cast(Image.Image, Weird()))
    assert info.value.status_code == 422


# ------------------------------------------------------------------------------ orientation


def oriented_jpeg(orientation: int, size: tuple[int, int] = (40, 20)) -> bytes:
    img = Image.new("RGB", size, RED)
    img.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif, quality=95)


def test_exif_orientation_6_swaps_width_and_height() -> None:
    out = load_image(oriented_jpeg(6))
    assert out.size == (20, 40)
    # Orientation 6 means "rotate 90 degrees clockwise to display": stored left goes on top.
    top = cast(tuple[int, int, int], out.getpixel((10, 2)))
    bottom = cast(tuple[int, int, int], out.getpixel((10, 37)))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_exif_orientation_1_unchanged() -> None:
    assert load_image(oriented_jpeg(1)).size == (40, 20)


# ----------------------------------------------------------------------------------- hostile


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("image.jpg", b"not really")
    return out.getvalue()


def truncated(fmt: str) -> bytes:
    data = encode(noise(64, 48), fmt)
    return data[: len(data) * 2 // 3]


HOSTILE: list[tuple[str, bytes, type[ImageError], str]] = [
    ("empty", b"", NotAnImageError, "0 bytes"),
    ("random", np.random.default_rng(1).bytes(4096), NotAnImageError, "unrecognised"),
    ("text", b"just some words\n" * 10, NotAnImageError, "text"),
    ("html", b"<!DOCTYPE html><html><body>404</body></html>", NotAnImageError, "HTML"),
    (
        "svg",
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>',
        NotAnImageError,
        "SVG",
    ),
    ("zip", zip_bytes(), NotAnImageError, "ZIP"),
    ("ico", encode(noise(16, 16), "ICO"), NotAnImageError, "ICO"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", NotAnImageError, "PDF"),
    ("truncated_jpeg", truncated("JPEG"), TruncatedImageError, "truncated"),
    ("truncated_png", truncated("PNG"), TruncatedImageError, "truncated"),
    ("truncated_gif", truncated("GIF"), TruncatedImageError, "truncated"),
    ("jpeg_magic_only", b"\xff\xd8\xff\xe0" + b"\x00" * 20, TruncatedImageError, "corrupt"),
    ("png_bad_crc", png_with_header(10, 10, bad_crc=True), TruncatedImageError, "png"),
    (
        "bomb_beyond_pillow_limit",
        png_with_header(100_000, 100_000),
        ImageTooLargeError,
        "image has 10000000000 pixels, the limit is 40000000",
    ),
    (
        "bomb_in_pillow_warning_zone",
        png_with_header(10_000, 10_000),
        ImageTooLargeError,
        "image has 100000000 pixels",
    ),
    ("bomb_over_max_pixels", png_with_header(7_000, 7_000), ImageTooLargeError, "49000000"),
]


@pytest.mark.parametrize(
    ("data", "error", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_inputs_raise_typed_errors(
    data: bytes, error: type[ImageError], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        load_image(data)
    assert isinstance(info.value, InvalidInputError)
    expected_status = {NotAnImageError: 415, ImageTooLargeError: 413}.get(error, 422)
    assert info.value.status_code == expected_status
    assert info.value.to_dict()["detail"] == info.value.message


def test_too_many_bytes() -> None:
    data = encode(noise(64, 64), "PNG")
    with pytest.raises(ImageTooLargeError, match=f"image is {len(data)} bytes, the limit is 100"):
        load_image(data, max_bytes=100)


def test_max_pixels_lowered() -> None:
    with pytest.raises(ImageTooLargeError, match="image has 4096 pixels"):
        load_image(encode(noise(64, 64), "PNG"), max_pixels=4000)


def test_stream_over_max_bytes_stops_reading() -> None:
    stream = io.BytesIO(b"\xff\xd8\xff" + b"\x00" * 5000)
    with pytest.raises(ImageTooLargeError, match="limit of 1000 bytes"):
        load_image(stream, max_bytes=1000)
    assert stream.tell() <= 1001


def test_bad_limits_rejected() -> None:
    with pytest.raises(InvalidInputError, match="max_pixels"):
        load_image(b"x", max_pixels=0)


# ------------------------------------------------------------------------------- sources


def test_sources_bytes_path_str_stream(tmp_path: Path) -> None:
    data = encode(noise(32, 24), "PNG")
    path = tmp_path / "product.png"
    path.write_bytes(data)
    for source in (data, bytearray(data), memoryview(data), path, str(path), io.BytesIO(data)):
        out = load_image(source)
        assert out.size == (32, 24)
        assert out.mode == "RGB"
    with path.open("rb") as fh:
        assert load_image(fh).size == (32, 24)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_loaded_image_is_independent_of_source() -> None:
    out = load_image(io.BytesIO(encode(noise(8, 8), "JPEG")))
    assert out.copy().getpixel((0, 0)) == out.getpixel((0, 0))


def test_errors_belong_to_project_hierarchy() -> None:
    for error in (NotAnImageError, TruncatedImageError, ImageTooLargeError):
        assert issubclass(error, ImageError)
        assert issubclass(error, LookalikeError)
    assert issubclass(UnsupportedImageModeError, InvalidInputError)


# ------------------------------------------------------------------------------------ probe


def test_probe_reads_header_only() -> None:
    # IDAT is garbage for a 5000x4000 image: a full decode would fail, the probe must not.
    info = probe_image(png_with_header(5_000, 4_000))
    assert info == ImageInfo("png", 5000, 4000, "RGB", len(png_with_header(5_000, 4_000)))
    with pytest.raises(TruncatedImageError):
        load_image(png_with_header(5_000, 4_000))


def test_probe_rejects_like_load() -> None:
    with pytest.raises(ImageTooLargeError):
        probe_image(png_with_header(100_000, 100_000))
    with pytest.raises(NotAnImageError):
        probe_image(b"<html></html>")


# ---------------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("fmt", "name", "params"),
    [
        ("JPEG", "jpeg", {}),
        ("PNG", "png", {}),
        ("GIF", "gif", {}),
        ("WEBP", "webp", {}),
        ("BMP", "bmp", {}),
        ("TIFF", "tiff", {}),
        ("TIFF", "tiff", {"big_tiff": True}),
    ],
)
def test_sniff_formats(fmt: str, name: str, params: dict[str, Any]) -> None:
    data = encode(noise(8, 8), fmt, **params)
    assert sniff_image_format(data) == name
    assert probe_image(data).format == name


@pytest.mark.parametrize(
    "data",
    [b"", b"BMW is a car brand, not a bitmap", b"RIFF\x00\x00\x00\x00WAVE", b"GIF90a", b"\xff\xd8"],
)
def test_sniff_rejects_non_images(data: bytes) -> None:
    assert sniff_image_format(data) is None


# ---------------------------------------------------------------------------------- geometry


def test_crop_box_plain_margin_and_clamp() -> None:
    img = Image.new("RGB", (100, 80))
    assert crop_box(img, (10, 20, 50, 60)).size == (40, 40)
    assert crop_box(img, (10.2, 20.7, 49.5, 59.1)).size == (40, 40)  # floor/ceil outward
    assert crop_box(img, (20, 20, 60, 60), margin=0.25).size == (60, 60)
    assert crop_box(img, (0, 0, 100, 80), margin=0.5).size == (100, 80)  # clamped
    assert crop_box(img, (-30, -30, 10, 10)).size == (10, 10)


def test_crop_box_keeps_content() -> None:
    img = Image.new("RGB", (20, 20), WHITE)
    img.paste(RED, (5, 5, 10, 10))
    assert (np.asarray(crop_box(img, (5, 5, 10, 10))) == RED).all()


@pytest.mark.parametrize(
    ("box", "margin"),
    [
        ((10, 10, 10, 20), 0.0),
        ((30, 10, 20, 20), 0.0),
        ((200, 200, 300, 300), 0.0),
        ((0, 0, float("nan"), 5), 0.0),
        ((0, 0, 5, 5), -0.1),
    ],
)
def test_crop_box_rejects_bad_boxes(box: tuple[float, float, float, float], margin: float) -> None:
    with pytest.raises(InvalidInputError):
        crop_box(Image.new("RGB", (100, 80)), box, margin=margin)


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (256, 256), (100, 50), (1000, 260)])
def test_resize_center_crop_sizes(size: tuple[int, int]) -> None:
    assert resize_center_crop(Image.new("RGB", size)).size == (224, 224)


def test_resize_center_crop_takes_the_centre() -> None:
    img = Image.new("RGB", (512, 256), WHITE)
    img.paste(RED, (192, 0, 320, 256))  # a centred red stripe, 128 wide
    out = resize_center_crop(img, 256, 128, resample=Image.Resampling.BILINEAR)
    arr = np.asarray(out)
    assert out.size == (128, 128)
    assert (arr[:, 2:-2] == RED).all()


def test_resize_center_crop_rejects_crop_larger_than_resize() -> None:
    with pytest.raises(InvalidInputError):
        resize_center_crop(Image.new("RGB", (300, 300)), 200, 224)


def test_gaussian_blur() -> None:
    img = noise(64, 64)
    blurred = gaussian_blur(img, 2.0)
    assert blurred.size == img.size
    assert np.asarray(blurred).std() < np.asarray(img).std() / 2
    assert gaussian_blur(img, 0) is not img
    with pytest.raises(InvalidInputError):
        gaussian_blur(img, -1)
    with pytest.raises(UnsupportedImageModeError):
        gaussian_blur(Image.new("P", (8, 8)), 1.0)


# ------------------------------------------------------------------------------------ output


def test_to_array_shape_range_and_values() -> None:
    img = Image.new("RGB", (5, 3), (255, 0, 51))
    arr = to_array(img)
    assert arr.shape == (3, 3, 5)
    assert arr.dtype == np.float32
    assert arr.flags.c_contiguous
    assert np.allclose(arr[:, 0, 0], [1.0, 0.0, 0.2])


def test_to_array_normalises_per_channel() -> None:
    img = Image.new("RGB", (4, 4), (255, 0, 51))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    arr = to_array(img, mean=mean, std=std)
    expected = (np.array([1.0, 0.0, 0.2]) - mean) / std
    assert np.allclose(arr[:, 2, 2], expected, atol=1e-5)
    assert np.allclose(to_array(img, mean=mean)[:, 0, 0], np.array([1.0, 0.0, 0.2]) - mean)


def test_to_array_grey_and_alpha() -> None:
    assert to_array(Image.new("L", (4, 2), 255)).shape == (1, 2, 4)
    rgba = to_array(Image.new("RGBA", (4, 2), (0, 0, 0, 0)))
    assert rgba.shape == (3, 2, 4)
    assert np.allclose(rgba, 1.0)  # transparent is white


def test_to_array_rejects_bad_stats() -> None:
    img = Image.new("RGB", (2, 2))
    with pytest.raises(InvalidInputError, match="mean"):
        to_array(img, mean=(0.5, 0.5))
    with pytest.raises(InvalidInputError, match="zeros"):
        to_array(img, std=(1.0, 0.0, 1.0))


def open_bytes(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_thumbnail_bytes() -> None:
    data = thumbnail_bytes(noise(600, 300))
    thumb = open_bytes(data)
    assert (thumb.format, thumb.size) == ("JPEG", (256, 128))
    assert open_bytes(thumbnail_bytes(noise(100, 50))).size == (100, 50)  # never upscales
    assert open_bytes(thumbnail_bytes(noise(50, 500), 64)).size == (6, 64)


def test_thumbnail_formats_and_alpha() -> None:
    rgba = half_transparent("RGBA")
    png = open_bytes(thumbnail_bytes(rgba, format="png"))
    assert (png.format, png.mode) == ("PNG", "RGBA")
    jpeg = open_bytes(thumbnail_bytes(rgba, format="JPEG", quality=95))
    assert jpeg.mode == "RGB"
    assert min(cast(tuple[int, int, int], jpeg.getpixel((0, 0)))) > 240  # white, not black
    assert open_bytes(thumbnail_bytes(Image.new("P", (8, 8)), format="WEBP")).format == "WEBP"
    with pytest.raises(InvalidInputError, match="GIF"):
        thumbnail_bytes(rgba, format="GIF")


def test_content_hash() -> None:
    data = encode(noise(8, 8), "PNG")
    assert content_hash(data) == content_hash(bytes(data)) == hashlib.sha256(data).hexdigest()
    assert content_hash(b"") == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert content_hash(data + b"\x00") != content_hash(data)


def test_average_hash_near_duplicates() -> None:
    img = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))).convert("RGB")
    recompressed = load_image(encode(img, "JPEG", quality=40))
    other = noise(64, 64, seed=3)
    h1, h2, h3 = average_hash(img), average_hash(recompressed), average_hash(other)
    assert len(h1) == 16

    def distance(a: str, b: str) -> int:
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    assert distance(h1, h2) <= 4
    assert distance(h1, h3) > 10


# ------------------------------------------------------------------------------------- draft


def test_draft_decodes_large_jpeg_at_reduced_scale() -> None:
    data = encode(Image.new("RGB", (2000, 1500), (10, 120, 200)), "JPEG")
    out = load_image(data, draft=(224, 224))
    assert out.mode == "RGB"
    assert min(out.size) >= 224
    assert max(out.size) <= 1000
    assert load_image(data).size == (2000, 1500)


def test_draft_respects_exif_rotation() -> None:
    out = load_image(oriented_jpeg(6, size=(1600, 400)), draft=(100, 400))
    assert out.width >= 100 and out.height >= 400
    assert out.size == (100, 400)


def test_draft_ignored_for_png_and_small_images() -> None:
    assert load_image(encode(noise(300, 200), "PNG"), draft=(32, 32)).size == (300, 200)
    assert load_image(encode(noise(100, 80), "JPEG"), draft=(224, 224)).size == (100, 80)


def test_draft_validated() -> None:
    with pytest.raises(InvalidInputError, match="draft"):
        load_image(b"", draft=(0, 224))


def test_work_image_decodes_large_jpegs_in_draft_and_reports_the_original_size() -> None:
    data = encode(noise(3200, 1600), "JPEG", quality=80)
    image, size = load_work_image(data, max_bytes=1 << 24, max_pixels=10_000_000)
    assert size == (3200, 1600)
    assert image.mode == "RGB"
    assert (image.width, image.height) == (1600, 800)  # 1/2 scale keeps 768 a side


def test_work_image_size_follows_exif_rotation() -> None:
    image, size = load_work_image(oriented_jpeg(6), max_bytes=1 << 20, max_pixels=1_000_000)
    assert size == (20, 40)
    assert (image.width, image.height) == (20, 40)


def test_work_image_keeps_the_limits() -> None:
    data = encode(noise(64, 64), "PNG")
    with pytest.raises(ImageTooLargeError):
        load_work_image(data, max_bytes=1 << 20, max_pixels=1000)
    with pytest.raises(NotAnImageError):
        load_work_image(b"<html></html>", max_bytes=1 << 20, max_pixels=1000)
