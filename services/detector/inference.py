"""Running the trained detector: PyTorch or ONNX Runtime, the same boxes either way.

``ModelRunner.load()`` is idempotent and locked; nothing is built until the first call. On a
CPU with ``onnxruntime`` installed, ``runtime="auto"`` exports the network once to
``<models_dir>/onnx/<version>-detector.onnx`` (dynamic height and width) and serves it with
ONNX Runtime, which runs the depthwise convolutions of EfficientNet-Lite several times faster
than eager PyTorch on 2 cores (tests/unit/test_detector_model.py checks the parity).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from services.detector.network import OUTPUT_STRIDE, STRIDE_MULTIPLE
from services.detector.postprocess import decode
from services.modellab.runtime import LoadOnce
from shared.detection import Detection
from shared.errors import ConfigurationError, InvalidInputError

__all__ = [
    "LITE_MEAN",
    "LITE_STD",
    "Letterbox",
    "ModelRunner",
    "Runtime",
    "export_detector_onnx",
    "letterbox",
    "to_detections",
]

log = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "onnx"]

LITE_MEAN = 127.0
LITE_STD = 128.0
"""EfficientNet-Lite's input scaling, in 0..255 units."""


@dataclass(frozen=True)
class Letterbox:
    """Input array of one image and how to map its boxes back: ``original = input / scale``."""

    array: np.ndarray  # (3, H, W) float32, normalised, H and W multiples of the stride
    scale: float


def letterbox(img: Image.Image, long_side: int, multiple: int = 32) -> Letterbox:
    """Scale the longer side to ``long_side``, normalise, pad right/bottom to ``multiple``.

    Padding is zero after normalisation (the backbone's mean colour).
    """
    scale = long_side / max(img.width, img.height)
    width = max(1, round(img.width * scale))
    height = max(1, round(img.height * scale))
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    resized = rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    pad_w = -(-width // multiple) * multiple
    pad_h = -(-height // multiple) * multiple
    out = np.zeros((3, pad_h, pad_w), dtype=np.float32)
    pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)
    out[:, :height, :width] = (pixels - LITE_MEAN) / LITE_STD
    return Letterbox(out, scale)


def export_detector_onnx(net: Any, path: Path, long_side: int) -> Path:
    """Export a :class:`DetectorNet` with dynamic batch, height and width (once per path)."""
    import torch

    from services.modellab.onnx import export_once

    example = torch.zeros(1, 3, long_side, long_side * 2 // 3 // STRIDE_MULTIPLE * STRIDE_MULTIPLE)
    axes = {
        "images": {0: "batch", 2: "height", 3: "width"},
        "peaks": {0: "batch", 2: "h", 3: "w"},
        "distances": {0: "batch", 2: "h", 3: "w"},
    }
    return export_once(net, example, path, output_names=["peaks", "distances"], dynamic_axes=axes)


class ModelRunner(LoadOnce):
    """The trained detector of one model directory, loaded on first use
    (:class:`~services.modellab.runtime.LoadOnce`)."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        runtime: Runtime = "auto",
        onnx_cache: str | os.PathLike[str] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if runtime not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"runtime must be auto, torch or onnx, got {runtime!r}")
        self.model_dir = Path(model_dir)
        self.requested_runtime: Runtime = runtime
        self.onnx_cache = Path(onnx_cache) if onnx_cache is not None else None
        self.threads = threads
        self._net: Any = None
        self._session: Any = None
        self.runtime: str = "unloaded"
        self.version: str = ""
        self.classes: list[str] = []
        self.long_side = 416

    def _load(self) -> None:
        """Build the network (and the ONNX session)."""
        from services.detector.artifact import load_net

        net, card = load_net(self.model_dir)
        self.version, self.classes, self.long_side = card.version, card.classes, card.long_side
        runtime = self.requested_runtime
        if runtime == "auto":
            runtime = "onnx" if _onnxruntime_available() else "torch"
        if runtime == "onnx":
            self._session = self._onnx_session(net)
        self._net = net
        self.runtime = runtime
        self.announce(log, "detector %s loaded (%s)", self.version, runtime)

    def _onnx_session(self, net: Any) -> Any:
        if not _onnxruntime_available():
            raise ConfigurationError("the onnx runtime needs the onnx and onnxruntime packages")
        import onnxruntime as ort

        from services.modellab.onnx import session_options
        from shared.settings import get_settings

        cache = self.onnx_cache or get_settings().models_dir / "onnx"
        path = cache / f"{self.version}-detector.onnx"
        if not path.is_file():
            export_detector_onnx(net, path, self.long_side)
        options = session_options(self.threads)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peak heatmap ``(N, K, h, w)`` and distances ``(N, 4, h, w)`` of a normalised batch."""
        self.load()
        if self._session is not None:
            peaks, distances = self._session.run(["peaks", "distances"], {"images": batch})
            return np.asarray(peaks), np.asarray(distances)
        import torch

        with torch.inference_mode():
            peaks_t, distances_t = self._net(torch.from_numpy(batch))
        return peaks_t.numpy(), distances_t.numpy()

    def detect(
        self, images: Sequence[Image.Image], *, min_score: float, max_detections: int
    ) -> list[list[Detection]]:
        """Boxes (in each image's pixels), categories and scores, best first."""
        self.load()
        boxes_in = [letterbox(img, self.long_side) for img in images]
        out: list[list[Detection]] = [[] for _ in images]
        # One forward per input shape: images of one aspect ratio share a batch.
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, lb in enumerate(boxes_in):
            groups.setdefault(lb.array.shape, []).append(index)
        for ids in groups.values():
            peaks, distances = self.forward(np.stack([boxes_in[i].array for i in ids]))
            for row, index in enumerate(ids):
                out[index] = to_detections(
                    peaks[row],
                    distances[row],
                    boxes_in[index].scale,
                    images[index].size,
                    self.classes,
                    min_score=min_score,
                    max_detections=max_detections,
                )
        return out


def to_detections(
    peaks: np.ndarray,
    distances: np.ndarray,
    scale: float,
    size: tuple[int, int],
    classes: Sequence[str],
    *,
    min_score: float,
    max_detections: int,
) -> list[Detection]:
    """One image's network outputs as detections in its own pixels (``size``: width, height),
    best first; ``scale`` is its letterbox factor."""
    boxes, scores, labels = decode(
        peaks, distances, stride=OUTPUT_STRIDE, min_score=min_score, max_detections=max_detections
    )
    boxes = boxes / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, size[0])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, size[1])
    out = []
    for box, score, label in zip(boxes, scores, labels, strict=True):
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        x0, y0, x1, y1 = (round(float(v), 1) for v in box)
        out.append(
            Detection(
                box=(x0, y0, x1, y1), category=classes[int(label)], score=round(float(score), 4)
            )
        )
    return out


def _onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
