"""The embedder's contracts: what embedding and classifying a batch of crops returns, in
process or over HTTP (``POST /features``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["CropFeatures", "Features"]


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
