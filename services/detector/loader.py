"""The in-process detector that :func:`services.detector.client.make_detector` gives when no
``detector_url`` is set: ``settings.detector.model`` (a detector artifact directory or shipped
name, a torchvision detection checkpoint, or an ultralytics YOLO ``.pt``), or the shipped
default, behind the foreground path for product shots.

Nothing is loaded at import time, and the model only on the first ``detect`` (thread-safe).
Without torch installed (the gateway image) the in-process detector still answers product
shots (foreground path) and falls back to the whole image elsewhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from shared.detection import DetectionResult, GarmentDetector
from shared.errors import ConfigurationError
from shared.settings import DetectorSettings

__all__ = ["LazyDetector", "resolve_backend"]

log = logging.getLogger(__name__)


def resolve_backend(model: str | None) -> object | None:
    """The model backend ``model`` names (``None``: the shipped default, if torch is here)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if model is not None:
            raise ConfigurationError(
                f"detector model {model!r} needs torch (pip install 'lookalike[ml]')"
            ) from None
        log.warning("torch is not installed: the detector answers product shots only")
        return None
    from services.detector.artifact import find_model_dir
    from services.detector.inference import ModelRunner

    model_dir = find_model_dir(model)
    if model_dir is not None:
        return ModelRunner(model_dir)
    if model is None:
        log.warning("the shipped detector is missing: the detector answers product shots only")
        return None
    path = Path(model)
    if not path.is_file():
        raise ConfigurationError(
            f"detector model {model!r} is neither a detector directory (with model.json), a "
            "shipped detector name, nor a checkpoint file"
        )
    from services.detector.plugins import TorchvisionBackend, YoloBackend, ultralytics_available

    if ultralytics_available() and _looks_like_yolo(path):
        return YoloBackend(path)
    return TorchvisionBackend(path)


def _looks_like_yolo(path: Path) -> bool:
    """Ultralytics checkpoints pickle their own classes; their module name shows in the file."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    return b"ultralytics" in head


class LazyDetector:
    """Builds the in-process :class:`~services.detector.service.Detector` on first use."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._detector: GarmentDetector | None = None

    def load(self) -> GarmentDetector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    from services.detector.service import Detector

                    backend = resolve_backend(self.settings.model)
                    loader = getattr(backend, "load", None)
                    if loader is not None:
                        loader()
                    self._detector = Detector(self.settings, backend)  # type: ignore[arg-type]
        return self._detector

    @property
    def version(self) -> str:
        return str(getattr(self.load(), "version", ""))

    def detect(self, images: Sequence[Image.Image]) -> list[DetectionResult]:
        return self.load().detect(images)
