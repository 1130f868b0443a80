"""Training images as arrays: augmented batches prepared in threads, clean batches, and the
backbone's features of them (ONNX Runtime on a CPU when installed)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import nn

from lab.embedder.config import TrainConfig
from services.embedder.network import EmbeddingNet
from services.modellab.models import Preprocess
from services.modellab.models.preprocess import decode_batch
from services.modellab.onnx import OnnxSession, export_onnx, onnxruntime_available

__all__ = ["Batches", "FeatureRunner", "augment", "clean_batches"]


def augment(img: Image.Image, size: int, rng: np.random.Generator, min_scale: float) -> Image.Image:
    """Random resized crop (scale ``min_scale``-1, ratio 3/4-4/3), flip, colour jitter."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(min_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            break
    else:
        w, h = min(width, height), min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(float(rng.uniform(0.8, 1.2)))
    return out


class Batches:
    """Decoded, augmented training batches, prepared in threads one batch ahead."""

    def __init__(
        self,
        paths: Sequence[Path],
        preprocess: Preprocess,
        config: TrainConfig,
        workers: int,
    ) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.config = config
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="augment")
        self._images: dict[int, Image.Image] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _image(self, index: int) -> Image.Image:
        # Decoded at the input size once: augmenting a small image is much cheaper, and the
        # crops never need more detail than the network's input.
        cached = self._images.get(index)
        if cached is None:
            img = self.preprocess.load(self.paths[index])
            side = round(self.preprocess.input_size / self.config.min_scale**0.5)
            if self.preprocess.fit == "squash":
                img = self.preprocess.squash(img, side)
            elif min(img.size) > side:
                scale = side / min(img.size)
                img = img.resize(
                    (round(img.width * scale), round(img.height * scale)),
                    Image.Resampling.BILINEAR,
                )
            self._images[index] = cached = img
        return cached

    def view(self, index: int, epoch: int, view: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, epoch, view, index])
        img = augment(self._image(index), self.preprocess.input_size, rng, self.config.min_scale)
        return self.preprocess.array(img)

    def _batch(self, indices: np.ndarray, epoch: int, view: int) -> np.ndarray:
        arrays = self.pool.map(lambda i: self.view(int(i), epoch, view), indices)
        return np.stack(list(arrays))

    def epoch(
        self, order: np.ndarray, epoch: int, view: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(indices, images)`` for each batch of ``order``."""
        size = self.config.batch_size
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            pending: Future[np.ndarray] | None = (
                prefetch.submit(self._batch, chunks[0], epoch, view) if chunks else None
            )
            for i, chunk in enumerate(chunks):
                assert pending is not None
                batch = pending.result()
                if i + 1 < len(chunks):
                    pending = prefetch.submit(self._batch, chunks[i + 1], epoch, view)
                yield chunk, batch


class FeatureRunner:
    """Backbone forward passes for feature caching and validation: ONNX Runtime on the CPU when
    installed (exported once per weight update), else PyTorch."""

    def __init__(
        self, net: EmbeddingNet, device: torch.device, workdir: Path, input_size: int
    ) -> None:
        self.net = net
        self.device = device
        self.workdir = workdir
        self.input_size = input_size
        self.use_onnx = device.type == "cpu" and onnxruntime_available()
        self._session: OnnxSession | None = None
        self._exports = 0

    def invalidate(self) -> None:
        """The backbone's weights changed: export again (to a new file: an export is written
        once per path) before the next use."""
        self._session = None
        self._path.unlink(missing_ok=True)
        self._exports += 1

    @property
    def _path(self) -> Path:
        return self.workdir / f"backbone-{self._exports}.onnx"

    def features(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Backbone features, one array per batch."""
        self.net.eval()
        if self.use_onnx:
            if self._session is None:
                export_onnx(_FeaturesOnly(self.net.backbone), self._path, self.input_size)
                self._session = OnnxSession(self._path)
            for batch in batches:
                yield self._session.run(batch)[0]
            return
        with torch.inference_mode():
            for batch in batches:
                x = torch.from_numpy(batch).to(self.device)
                yield self.net.backbone(x).float().cpu().numpy()


class _FeaturesOnly(nn.Module):
    """The backbone's raw features as an "embedding" (so the ONNX exporter sees one output)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.backbone(x), None


def clean_batches(
    paths: Sequence[Path], preprocess: Preprocess, pool: ThreadPoolExecutor
) -> Iterator[np.ndarray]:
    for start in range(0, len(paths), 64):
        yield decode_batch(paths[start : start + 64], preprocess, pool)
