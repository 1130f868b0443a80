"""What ``eval-e2e`` reads (catalog rows, street photos with their boxes) and what it records
for each answered photo; the scoring (``e2e``) and the contact sheets (``sheets``) share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.evaluate.matching import Box, PhotoScore
from services.gateway.schemas import RecommendResponse
from shared.colour import label_colour
from shared.crops import GarmentCrop

__all__ = ["Answer", "CatalogItem", "StreetPhoto"]


@dataclass(frozen=True)
class CatalogItem:
    """One row of ``labels.csv``."""

    item_id: str
    path: Path
    article_type: str
    sub_category: str
    colour: str
    title: str
    attributes: dict[str, str]

    @property
    def colour_name(self) -> str | None:
        """The ``baseColour`` label as a shopper colour name (``Navy Blue`` -> ``navy``;
        ``None``: no one colour, e.g. ``Multi``)."""
        return label_colour(self.colour)


@dataclass(frozen=True)
class StreetPhoto:
    """A photo of ``boxes.csv`` and its ground truth ``(category, box)``."""

    path: Path
    truth: tuple[tuple[str, Box], ...]


@dataclass
class Answer:
    """One answered photo: its score inputs, the response and how long it took."""

    path: Path
    truth: tuple[tuple[str, Box], ...]
    response: RecommendResponse
    wall_ms: float
    score: PhotoScore | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    crops: tuple[GarmentCrop, ...] = ()
    """The photo's garment crops as the pipeline cut them (kept for the contact sheets only)."""
