"""Stronger detectors a user brings: a torchvision detection checkpoint or an ultralytics YOLO.

Both answer like the shipped model (boxes in image pixels, a coarse category, a score). Class
names are mapped onto :data:`shared.detection.COARSE_CATEGORIES`: DeepFashion2 and ModaNet names
are known; a name that already is a coarse category is kept; others become ``None``.

A torchvision checkpoint is either a whole pickled model (``torch.save(model)``) or a dict
``{"arch": "fasterrcnn_resnet50_fpn_v2", "state_dict": ..., "classes": [...]}`` where
``classes`` excludes the background class. Only load checkpoints you trust: unpickling runs code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.detection import COARSE_CATEGORIES, Detection
from shared.errors import ConfigurationError

__all__ = ["TorchvisionBackend", "YoloBackend", "coarse_category", "ultralytics_available"]

_ALIASES: dict[str, str] = {
    # DeepFashion2
    "short sleeve top": "top",
    "long sleeve top": "top",
    "short sleeve outwear": "outerwear",
    "long sleeve outwear": "outerwear",
    "vest": "top",
    "sling": "top",
    "shorts": "bottom",
    "trousers": "bottom",
    "skirt": "bottom",
    "short sleeve dress": "dress",
    "long sleeve dress": "dress",
    "vest dress": "dress",
    "sling dress": "dress",
    # ModaNet
    "upper": "top",
    "outer": "outerwear",
    "pants": "bottom",
    "footwear": "footwear",
    "boots": "footwear",
    "shoes": "footwear",
    "bag": "bag",
    "belt": "accessory",
    "scarf & tie": "accessory",
    "headwear": "accessory",
    "sunglasses": "accessory",
    "dress": "dress",
    "top": "top",
    "outerwear": "outerwear",
    "bottom": "bottom",
}


def coarse_category(name: str) -> str | None:
    """The coarse category of a detector's class name, or ``None`` when unknown."""
    key = name.strip().lower().replace("_", " ")
    if key in COARSE_CATEGORIES:
        return key
    return _ALIASES.get(key)


def ultralytics_available() -> bool:
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        return False
    return True


def _checkpoint_version(path: Path) -> str:
    stat = path.stat()
    return f"{path.stem}-{stat.st_size:x}{int(stat.st_mtime):x}"


class TorchvisionBackend:
    """A torchvision detection model (Faster R-CNN, RetinaNet, FCOS, SSD ...) from a file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigurationError(f"detector checkpoint {self.path} does not exist")
        self.version = _checkpoint_version(self.path)
        self._lock = threading.Lock()
        self._model: Any = None
        self._classes: list[str | None] = []

    def load(self) -> TorchvisionBackend:
        if self._model is not None:
            return self
        with self._lock:
            if self._model is None:
                self._model, self._classes = self._build()
        return self

    def _build(self) -> tuple[Any, list[str | None]]:
        import torch
        import torchvision

        try:
            loaded = torch.load(self.path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ConfigurationError(f"cannot read detector checkpoint {self.path}: {exc}") from exc
        if isinstance(loaded, torch.nn.Module):
            names = list(getattr(loaded, "classes", []))
            return loaded.eval(), [None, *(coarse_category(n) for n in names)]
        if not isinstance(loaded, dict) or "arch" not in loaded or "state_dict" not in loaded:
            raise ConfigurationError(
                f"{self.path} is neither a pickled torchvision model nor a dict with 'arch', "
                "'state_dict' and 'classes'"
            )
        names = [str(n) for n in loaded.get("classes", [])]
        try:
            builder = getattr(torchvision.models.detection, str(loaded["arch"]))
        except AttributeError as exc:
            raise ConfigurationError(f"unknown torchvision detector {loaded['arch']!r}") from exc
        model = builder(weights=None, weights_backbone=None, num_classes=len(names) + 1)
        model.load_state_dict(loaded["state_dict"])
        return model.eval(), [None, *(coarse_category(n) for n in names)]

    def detect(
        self, images: Sequence[Image.Image], *, min_score: float, max_detections: int
    ) -> list[list[Detection]]:
        import torch

        self.load()
        tensors = [
            torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
            for img in images
        ]
        with torch.inference_mode():
            outputs = self._model(tensors)
        results = []
        for out in outputs:
            found = []
            for box, score, label in zip(
                out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist(), strict=True
            ):
                if score < min_score:
                    continue
                category = self._classes[label] if 0 <= label < len(self._classes) else None
                found.append(Detection(box=tuple(box), category=category, score=float(score)))
            found.sort(key=lambda d: -d.score)
            results.append(found[:max_detections])
        return results


class YoloBackend:
    """An ultralytics YOLO detection model (``.pt``); needs the ``ultralytics`` package."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not ultralytics_available():
            raise ConfigurationError("a YOLO detector needs the ultralytics package")
        if not self.path.is_file():
            raise ConfigurationError(f"detector checkpoint {self.path} does not exist")
        self.version = _checkpoint_version(self.path)
        self._lock = threading.Lock()
        self._model: Any = None

    def load(self) -> YoloBackend:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from ultralytics import YOLO

                    self._model = YOLO(str(self.path))
        return self

    def detect(
        self, images: Sequence[Image.Image], *, min_score: float, max_detections: int
    ) -> list[list[Detection]]:
        self.load()
        names: dict[int, str] = dict(self._model.names)
        results = []
        for out in self._model.predict(
            list(images), conf=min_score, max_det=max_detections, verbose=False
        ):
            found = []
            boxes = out.boxes
            for box, score, label in zip(
                boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True
            ):
                category = coarse_category(names.get(int(label), ""))
                found.append(Detection(box=tuple(box), category=category, score=float(score)))
            found.sort(key=lambda d: -d.score)
            results.append(found[:max_detections])
        return results
