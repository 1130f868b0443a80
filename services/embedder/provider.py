"""Which models a process serves: the catalog's active embedder model version, loaded once and
switched when ``lookalike reindex`` activates another, and the garment classifier. The
query-time embedder and the ingest worker both ask it, so queries and the catalog are embedded
and classified by the same models."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from shared.db import Catalog, ModelVersionIn
from shared.errors import ConfigurationError, InvalidInputError
from shared.settings import Settings

if TYPE_CHECKING:
    from services.embedder.inference import Embedder

__all__ = ["CROP_VARIANTS", "ModelProvider", "ModelSpec", "base_version", "variant_of"]

log = logging.getLogger(__name__)


CROP_VARIANTS = ("cutout",)
"""The variants :attr:`shared.settings.CropSettings.variant` appends to a model version."""


def variant_of(version: str) -> str:
    """The crops' variant a model version names (``street-lite2+cutout`` -> ``cutout``; ""
    for none)."""
    _, plus, variant = version.rpartition("+")
    return variant if plus and variant in CROP_VARIANTS else ""


def base_version(version: str) -> str:
    """A model version without the crops' variant (``street-lite2+cutout`` -> ``street-lite2``)."""
    variant = variant_of(version)
    return version.removesuffix(f"+{variant}") if variant else version


@dataclass(frozen=True)
class ModelSpec:
    """What to load: a registry backbone name or a trained model directory, and how."""

    source: str = "efficientnet_lite0"
    weights: str = "imagenet"
    runtime: str = "auto"
    device: str = "auto"
    licence: str = ""
    """A foundation model's weights' licence, as the operator states it (card)."""

    def card(self) -> dict[str, str]:
        return {
            "source": self.source,
            "weights": self.weights,
            "runtime": self.runtime,
            "device": self.device,
            **({"licence": self.licence} if self.licence else {}),
        }

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ModelSpec | None:
        """The spec stored in a model version's card, or None if it has none."""
        loader = card.get("loader")
        if not isinstance(loader, Mapping) or not loader.get("source"):
            return None
        return cls(
            source=str(loader["source"]),
            weights=str(loader.get("weights", "imagenet")),
            runtime=str(loader.get("runtime", "auto")),
            device=str(loader.get("device", "auto")),
            licence=str(loader.get("licence", "")),
        )

    @classmethod
    def parse(
        cls,
        model: str,
        *,
        weights: str = "imagenet",
        runtime: str = "auto",
        device: str = "auto",
        licence: str = "",
    ) -> ModelSpec:
        """A spec from the command line: a model directory (or a weights path) becomes an
        absolute path."""
        path = Path(model).expanduser()
        source = str(path.resolve()) if path.exists() else model
        weights_path = Path(weights).expanduser()
        if weights not in ("imagenet", "random") and weights_path.exists():
            weights = str(weights_path.resolve())
        return cls(source=source, weights=weights, runtime=runtime, device=device, licence=licence)


class ModelProvider:
    """The embedder model of this process: loaded once, switched when the catalog's active
    embedder model changes (``lookalike reindex`` activates a new one)."""

    def __init__(
        self, catalog: Catalog, settings: Settings, *, keep: int = 2, threads: int | None = None
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.threads = threads
        self._keep = keep
        self._models: dict[ModelSpec, Embedder] = {}
        self._lock = threading.Lock()
        self._classifier: Embedder | None = None
        self._classifier_failed = False

    def load(self, spec: ModelSpec) -> Embedder:
        """The loaded model for ``spec`` (cached; the oldest beyond ``keep`` is dropped)."""
        from services.embedder.inference import Embedder

        with self._lock:
            model = self._models.get(spec)
            if model is None:
                model = Embedder(
                    spec.source,
                    weights=spec.weights,
                    device=spec.device,
                    batch_size=self.settings.ingest.batch_size,
                    runtime=spec.runtime,  # type: ignore[arg-type]
                    onnx_cache=self.settings.models_dir / "onnx",
                    threads=self.threads,
                    allow_download=self.settings.embedder.allow_download,
                    licence=spec.licence or self.settings.embedder.weights_licence,
                    bridge=self.settings.embedder.bridge,
                    variant=self.settings.crops.variant,
                ).load()
                self._models[spec] = model
                while len(self._models) > self._keep:
                    oldest = next(iter(self._models))
                    self._models.pop(oldest).close()
            return model

    def active_spec(self) -> tuple[ModelSpec, bool]:
        """The catalog's active embedder spec (and True), or ``embedder.model``'s (and False)."""
        active = self.catalog.active_model_version("embedder")
        spec = ModelSpec.from_card(active.card) if active is not None else None
        if spec is not None:
            return spec, True
        return ModelSpec.parse(self.settings.embedder.model), False

    def current(self) -> Embedder:
        """The active model; the default one becomes active when none is."""
        spec, registered = self.active_spec()
        model = self.load(spec)
        if not registered:
            self.register(model, spec, activate=True)
        return model

    def indexing(self) -> Embedder:
        """The active model, to add vectors to the catalog's index with: refused
        (:class:`~shared.errors.ConfigurationError`) when this process makes its crops
        otherwise than the index was made (``crops.remove_background``: the active version
        and this process's differ by their variant), so one index never mixes the two."""
        model = self.current()
        active = self.catalog.active_model_version("embedder")
        ours = model.info.version
        if (
            active is not None
            and active.name != ours
            and base_version(active.name) == (base_version(ours))
        ):
            want = "on" if variant_of(active.name) == "cutout" else "off"
            raise ConfigurationError(
                f"the index holds {active.name} vectors but this process makes {ours} ones: "
                f"set crops.remove_background {want} (LOOKALIKE_CROPS__REMOVE_BACKGROUND), or "
                "run `lookalike reindex` with this setting to switch the index"
            )
        return model

    def classifier(self, model: Embedder) -> Embedder | None:
        """The garment classifier that goes with ``model``: the model itself when it has a
        classifier head, else the separate one of ``embedder.classifier`` (loaded once), or
        ``None`` when none is configured or it cannot be loaded (then nothing is classified)."""
        if model.info.classes:
            return model
        name = self.settings.embedder.classifier
        if not name or self._classifier_failed:
            return self._classifier
        from services.embedder.inference import Embedder

        with self._lock:
            if self._classifier is None and not self._classifier_failed:
                try:
                    self._classifier = Embedder(
                        name,
                        batch_size=self.settings.ingest.batch_size,
                        workers=1,
                        onnx_cache=self.settings.models_dir / "onnx",
                        threads=self.threads,
                    ).load()
                except (InvalidInputError, ConfigurationError, OSError) as exc:
                    self._classifier_failed = True
                    log.warning("no garment classifier (%s): crops are not classified", exc)
        return self._classifier

    def register(self, model: Embedder, spec: ModelSpec, *, activate: bool) -> int:
        """Record the model version in the catalog (idempotent); returns its id."""
        info = model.info
        entry = ModelVersionIn(
            name=info.version,
            kind="embedder",
            backbone=info.backbone,
            dim=info.dim,
            card={
                "loader": spec.card(),
                "classes": list(info.classes),
                "name": info.name,
                "text": info.has_text,
                **({"weights": info.weights} if info.weights else {}),
            },
        )
        try:
            return self.catalog.register_model_version(entry, activate=activate).id
        except IntegrityError:
            # Another worker registered the same version a moment ago.
            return self.catalog.register_model_version(entry, activate=activate).id

    def close(self) -> None:
        with self._lock:
            for model in self._models.values():
                model.close()
            self._models.clear()
            if self._classifier is not None:
                self._classifier.close()
                self._classifier = None
