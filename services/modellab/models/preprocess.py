"""Per-model preprocessing: the transform is built from the model's config, never hand-copied.

Decoding uses JPEG draft mode (the decoder skips detail a 224 px input cannot use) and, for
batches, a thread pool: Pillow releases the GIL while it decodes and resizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, TypeAlias

import numpy as np
from PIL import Image

from shared.errors import InvalidInputError
from shared.images import ImageSource, load_image, resize_center_crop, to_array, to_rgb

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageInput",
    "Preprocess",
    "decode_batch",
    "decode_pool",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageInput: TypeAlias = ImageSource | Image.Image
"""What the embedder accepts: a path, raw bytes, a binary stream or a PIL image."""

Interpolation = Literal["bilinear", "bicubic"]
Fit = Literal["crop", "squash"]
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: shorter side to ``resize_size``, centre ``input_size`` crop,
    then ``(x / 255 - mean) / std`` per RGB channel.

    ``fit="squash"`` resizes both sides to ``resize_size`` instead (aspect not kept): a tall
    garment crop keeps its neckline and hem, as the squared street crops and catalog photos
    the classifier learns from do.
    """

    input_size: int
    resize_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: Interpolation = "bilinear"
    fit: Fit = "crop"

    def __post_init__(self) -> None:
        if self.input_size <= 0 or self.resize_size < self.input_size:
            raise InvalidInputError(
                f"need 0 < input_size <= resize_size, got {self.input_size} and {self.resize_size}"
            )
        if self.interpolation not in _RESAMPLE:
            raise InvalidInputError(f"interpolation must be bilinear or bicubic, not {self!r}")
        if self.fit not in ("crop", "squash"):
            raise InvalidInputError(f"fit must be crop or squash, not {self.fit!r}")

    @property
    def crop_fraction(self) -> float:
        return self.input_size / self.resize_size

    def with_input_size(
        self, input_size: int, crop_fraction: float | None = None, fit: Fit | None = None
    ) -> Preprocess:
        """The same transform at another resolution, keeping (or setting) the crop fraction and
        the fit."""
        fraction = self.crop_fraction if crop_fraction is None else crop_fraction
        if not 0 < fraction <= 1:
            raise InvalidInputError(f"crop fraction must be in (0, 1], got {fraction}")
        return replace(
            self,
            input_size=input_size,
            resize_size=round(input_size / fraction),
            fit=fit or self.fit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        mean, std = tuple(data["mean"]), tuple(data["std"])
        if len(mean) != 3 or len(std) != 3:
            raise InvalidInputError(f"mean and std need 3 values each, got {mean} and {std}")
        return cls(
            input_size=int(data["input_size"]),
            resize_size=int(data["resize_size"]),
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            interpolation=data.get("interpolation", "bilinear"),
            fit=data.get("fit", "crop"),
        )

    def load(self, source: ImageInput) -> Image.Image:
        """Decode (draft mode for JPEG) into RGB; PIL images are only converted."""
        if isinstance(source, Image.Image):
            return to_rgb(source)
        return load_image(source, draft=(self.resize_size, self.resize_size))

    def geometry(self, img: Image.Image) -> Image.Image:
        """Resize (the shorter side, or both with ``squash``) and take the centre crop."""
        resample = _RESAMPLE[self.interpolation]
        if self.fit == "squash":
            img = self.squash(img, self.resize_size)
        return resize_center_crop(img, self.resize_size, self.input_size, resample=resample)

    def squash(self, img: Image.Image, side: int) -> Image.Image:
        """``img`` resized to a ``side`` square, whatever its aspect."""
        if img.size == (side, side):
            return img
        return img.resize((side, side), _RESAMPLE[self.interpolation])

    def array(self, img: Image.Image) -> np.ndarray:
        """Normalised float32 CHW array of an image that already has the input size."""
        return to_array(img, mean=self.mean, std=self.std)

    def __call__(self, source: ImageInput) -> np.ndarray:
        """Decode, resize, crop and normalise one image into a float32 CHW array."""
        return self.array(self.geometry(self.load(source)))


def default_workers() -> int:
    """Decode threads: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@contextmanager
def decode_pool(workers: int | None = None) -> Iterator[ThreadPoolExecutor | None]:
    """A thread pool for decoding, or ``None`` when one worker is asked for."""
    count = default_workers() if workers is None else workers
    if count <= 1:
        yield None
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="decode") as pool:
        yield pool


def decode_batch(
    images: Sequence[ImageInput],
    preprocess: Preprocess,
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """Decode and normalise images into one float32 ``(N, 3, S, S)`` array."""
    size = preprocess.input_size
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    if pool is None or len(images) == 1:
        for i, image in enumerate(images):
            out[i] = preprocess(image)
        return out
    for i, arr in enumerate(pool.map(preprocess, images)):
        out[i] = arr
    return out
