"""The gateway's garment detector, from one factory (switching detectors is one line)."""

from __future__ import annotations

from services.detector import load_detector
from shared.detection import GarmentDetector
from shared.settings import Settings


def make_detector(settings: Settings) -> GarmentDetector:
    """The configured detector: the detector service when ``detector_url`` is set, else in
    process (the same one ingest crops the catalog with, so queries and catalog match)."""
    return load_detector(settings)
