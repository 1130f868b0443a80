"""The embedder's contracts: what embedding and classifying a batch of crops returns, and what
words become among the pictures, in process or over HTTP (``POST /features``, ``POST /words``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["CropFeatures", "Features", "WordVectors", "WordsRequest"]

MAX_TEXTS = 16


class CropFeatures(BaseModel):
    """One crop: its embedding and (with a classifier) categories."""

    embedding: list[float]
    category: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] = Field(
        default_factory=dict,
        description="Every category of the classifier, most probable first (the gateway reads "
        "a class the classifier all but rules out from it).",
    )


class Features(BaseModel):
    crops: list[CropFeatures]
    model_version: str
    classifier_version: str | None = None


class WordsRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)


class WordVectors(BaseModel):
    """Words as a search among the pictures: one image-space vector per text (and the colour
    descriptor of the colour it names, by a word bridge), or nothing when the active model
    has no way to read words (``path`` null)."""

    path: Literal["tower", "bridge"] | None = Field(
        default=None,
        description="The model's text tower, a word bridge learnt for it, or none.",
    )
    vectors: list[list[float]] = Field(default_factory=list)
    colours: list[list[float] | None] = Field(default_factory=list)
    model_version: str
