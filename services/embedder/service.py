"""Query-time embedding: crops in, embedding + category out.

The gateway calls this for a shopper's garment crops, in process (``lookalike run``) or through
the embedder service (``python -m services.embedder``). Crops are embedded with the catalog's
active embedder model (the one whose collection the recommender searches; refreshed every
``refresh_s`` seconds so a ``lookalike reindex`` is picked up) and classified with its own
head, or, when it has none (the frozen ImageNet default), with a separate classifier (the
shipped ``street-lite0`` by default). Nothing here imports FastAPI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from services.embedder.provider import ModelProvider, ModelSpec
from services.embedder.schemas import CropFeatures, Features, WordVectors
from shared.errors import InvalidInputError, LookalikeError
from shared.health import Check
from shared.images import to_rgb

if TYPE_CHECKING:
    from services.embedder.inference import Embedder

__all__ = ["EmbedderService"]

log = logging.getLogger(__name__)

MAX_CROPS = 16


class EmbedderService:
    """Embeds and classifies query crops with the catalog's active model."""

    def __init__(
        self,
        models: ModelProvider,
        *,
        refresh_s: float = 10.0,
    ) -> None:
        self.models = models
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._spec: ModelSpec | None = None
        self._spec_at = 0.0

    def model(self) -> Embedder:
        """The active embedder model (the catalog is asked at most every ``refresh_s``)."""
        now = time.monotonic()
        if self._spec is None or now - self._spec_at > self.refresh_s:
            model = self.models.current()
            spec, _ = self.models.active_spec()
            with self._lock:
                self._spec, self._spec_at = spec, now
            return model
        return self.models.load(self._spec)

    def classifier(self) -> Embedder | None:
        """The garment classifier of the active model (see :meth:`ModelProvider.classifier`)."""
        return self.models.classifier(self.model())

    def warm(self) -> None:
        """Load the models now (a service start), not on the first request; a failure is
        logged (the first request tries again)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self.classifier()
        except (LookalikeError, SQLAlchemyError, OSError) as exc:
            log.warning("could not load the embedder model at start: %s", exc)

    def features(self, crops: Sequence[Image.Image], *, classify: bool = True) -> Features:
        """Embedding and (``classify``) categories of each crop, in order (the crop's colour
        descriptor comes with the crop: :func:`shared.crops.garment_crops`). A caller that
        chose the category itself skips the separate classifier."""
        if not crops:
            raise InvalidInputError("no crops to embed")
        if len(crops) > MAX_CROPS:
            raise InvalidInputError(f"at most {MAX_CROPS} crops per call, got {len(crops)}")
        model = self.model()
        pictures = [to_rgb(crop) for crop in crops]
        classes: tuple[str, ...] = model.info.classes
        classifier_version = None
        probabilities: np.ndarray | None = None
        if classes and classify:
            embeddings, probabilities = model.classify(pictures)
            classifier_version = model.info.version
        else:
            embeddings = model.embed(pictures)
            classifier = self.classifier() if classify else None
            if classifier is not None:
                _, probabilities = classifier.classify(pictures)
                classes = classifier.info.classes
                classifier_version = classifier.info.version
        out = []
        for i, embedding in enumerate(embeddings):
            item = CropFeatures(embedding=embedding.astype(np.float32).tolist())
            if probabilities is not None:
                order = np.argsort(-probabilities[i])
                item.probabilities = {
                    classes[j]: round(float(probabilities[i][j]), 6) for j in order
                }
                item.category = classes[order[0]]
                item.probability = round(float(probabilities[i][order[0]]), 6)
            out.append(item)
        return Features(
            crops=out, model_version=model.info.version, classifier_version=classifier_version
        )

    def words(self, texts: Sequence[str]) -> WordVectors:
        """``texts`` as vectors among the active model's pictures: by its text tower, else by
        the word bridge learnt for it (with the colour the words name), else none."""
        if not texts:
            raise InvalidInputError("no texts to embed")
        model = self.model()
        path = model.info.text_path
        if path is None:
            return WordVectors(model_version=model.info.version)
        vectors = model.embed_text(list(texts))
        bridge = model.bridge if path == "bridge" else None
        colours = [
            None if bridge is None or (c := bridge.colour(text)) is None else c.tolist()
            for text in texts
        ]
        return WordVectors(
            path=path,
            vectors=vectors.astype(np.float32).tolist(),
            colours=colours,
            model_version=model.info.version,
        )

    def check(self) -> Check:
        """Ready once the active model is loaded."""
        loaded = self._spec is not None
        detail = f"model {self._spec.source}" if self._spec is not None else "model not loaded yet"
        return Check("embedder", loaded, detail, 0.0)

    def close(self) -> None:
        self.models.close()
