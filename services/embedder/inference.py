"""The inference wrapper: load a model once, embed and classify batches of images.

>>> embedder = Embedder("efficientnet_lite0")          # a registry backbone (frozen ImageNet)
>>> embedder = Embedder("/models/street-v1")            # or a trained model directory
>>> vectors = embedder.embed(["a.jpg", jpeg_bytes, pil_image])   # (3, dim), L2-normalised
>>> predictions = embedder.predict([pil_image])        # category, probabilities, colour
>>> clip = Embedder("ViT-B-16-SigLIP", weights="/models/marqo-fashionSigLIP")
>>> clip.has_text, clip.embed_text(["navy tee"])         # (True, (1, 768) in the images' space)

``load()`` is idempotent and locked (call it in a worker's process init or a FastAPI lifespan);
``embed`` and ``predict`` load on first use. Decoding runs in a thread pool and overlaps with
the model; on the CPU the model runs in ONNX Runtime when it is installed (``runtime="auto"``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from services.modellab.models.preprocess import (
    ImageInput,
    Preprocess,
    decode_batch,
    default_workers,
)
from services.modellab.runtime import LoadOnce
from shared.colour import colour_descriptor
from shared.errors import InvalidInputError

if TYPE_CHECKING:
    from services.embedder.bridge import WordBridge

__all__ = ["DEFAULT_MODEL", "Embedder", "ModelInfo", "Prediction", "Runtime"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "efficientnet_lite0"
Runtime = Literal["auto", "torch", "onnx"]


@dataclass(frozen=True)
class ModelInfo:
    """What every stored vector records about the model that made it."""

    name: str
    version: str
    backbone: str
    dim: int
    classes: tuple[str, ...]
    preprocess: Preprocess
    runtime: str
    device: str
    has_text: bool = False
    """Whether the model has a text tower (words and pictures in one space)."""
    text_path: Literal["tower", "bridge"] | None = None
    """How :meth:`Embedder.embed_text` puts words among the pictures: the model's text tower,
    a word bridge learnt for it (:mod:`services.embedder.bridge`), or not at all."""
    weights: dict[str, Any] = field(default_factory=dict, hash=False)
    """Where a foundation model's weights came from (path, sha256, licence)."""


@dataclass(frozen=True)
class Prediction:
    """One image's embedding, colour descriptor and (with a classifier) category."""

    embedding: np.ndarray
    colour: np.ndarray
    category: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(LoadOnce):
    """Embeds and classifies images with one model (a backbone name or a model directory);
    loaded on first use (:class:`~services.modellab.runtime.LoadOnce`)."""

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        weights: str | os.PathLike[str] = "imagenet",
        device: str = "auto",
        batch_size: int = 32,
        workers: int | None = None,
        runtime: Runtime = "auto",
        onnx_cache: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        allow_download: bool = False,
        licence: str = "",
        bridge: str | os.PathLike[str] | None = None,
        variant: str = "",
    ) -> None:
        """``bridge``: a folder with a word bridge for this model (default: beside its card).
        ``variant``: how the crops it embeds were made, when not the default
        (:attr:`shared.settings.CropSettings.variant`), appended to its version
        (``street-lite2+cutout``): vectors of other crops are another index."""
        super().__init__()
        if batch_size <= 0:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        if runtime not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"runtime must be auto, torch or onnx, got {runtime!r}")
        self.model = model
        self.weights = weights
        self.device_name = device
        self.batch_size = batch_size
        self.workers = default_workers() if workers is None else max(1, workers)
        self.runtime = runtime
        self.onnx_cache = Path(onnx_cache) if onnx_cache is not None else None
        self.threads = threads
        # A foundation model's hf-hub: weights may be fetched; its weights' licence (card).
        self.allow_download = allow_download
        self.licence = licence
        self.bridge_dir = Path(bridge) if bridge is not None else None
        self.variant = variant
        self._info: ModelInfo | None = None
        self._net: object = None
        self._session: object = None
        self._text: object = None
        self._text_session: object = None
        self._tokenize: Any = None
        self._bridge: WordBridge | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------------------ loading

    @property
    def info(self) -> ModelInfo:
        """Model name, version, dimension, classes, preprocessing (loads the model)."""
        self.load()
        assert self._info is not None
        return self._info

    def _load(self) -> None:
        import torch

        from services.embedder.artifact import find_model_dir, load_model, shipped_models
        from services.embedder.bridge import load_bridge
        from services.embedder.network import EmbeddingNet, resolve_device
        from services.modellab.models import available_backbones, create_backbone
        from services.modellab.models.openclip import (
            CLIP_FAMILIES,
            ClipBackbone,
            build_clip,
            family_of_directory,
        )
        from services.modellab.onnx import onnxruntime_available

        device = resolve_device(self.device_name)
        model_dir = find_model_dir(self.model)
        clip_family = (
            family_of_directory(self.model, allow_download=self.allow_download)
            if model_dir is None
            else None
        )
        weights_card: dict[str, Any] = {}
        clip: ClipBackbone | None = None
        if clip_family is not None or str(self.model) in available_backbones():
            # A registry backbone, or an OpenCLIP directory (its config names the architecture).
            name = backbone = clip_family or str(self.model)
            weights = str(self.model) if clip_family is not None else self.weights
            built = (
                build_clip(name, weights, allow_download=self.allow_download, licence=self.licence)
                if name in CLIP_FAMILIES
                else create_backbone(name, weights)
            )
            net = EmbeddingNet(built)
            classes: tuple[str, ...] = ()
            if isinstance(built, ClipBackbone):
                clip, weights_card = built, built.provenance()
                version = f"{name}-{built.weights_tag}"
            else:
                version = f"{name}-{self._weights_tag()}"
        elif model_dir is not None:
            net, card = load_model(model_dir)
            name, version, classes = card.name, card.version, tuple(card.classes)
            backbone = card.backbone
            self._bridge = load_bridge(self.bridge_dir or model_dir, version)
        else:
            raise InvalidInputError(
                f"no model {str(self.model)!r}: give a model directory, a shipped model "
                f"({', '.join(shipped_models()) or 'none'}) or a backbone "
                f"({', '.join(available_backbones())})"
            )
        preprocess = net.backbone.preprocess
        runtime = self.runtime
        if runtime == "auto":
            runtime = "onnx" if device.type == "cpu" and onnxruntime_available() else "torch"
        if runtime == "onnx":
            if device.type != "cpu":
                raise InvalidInputError("the onnx runtime serves on the CPU only")
            self._session = self._onnx_session(net, version, preprocess.input_size)
        else:
            self._net = net.to(device).eval()
        if clip is not None and clip.tokenizer is not None:
            self._tokenize = clip.tokenize
            if runtime == "onnx":
                self._text_session = self._onnx_text_session(clip, version)
            else:
                self._text = clip.text.to(device).eval()
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
            if self.workers > 1
            else None
        )
        self._device = device
        self._torch = torch
        self._info = ModelInfo(
            name=name,
            version=f"{version}+{self.variant}" if self.variant else version,
            backbone=backbone,
            dim=net.embedding_dim,
            classes=classes,
            preprocess=preprocess,
            runtime=runtime,
            device=str(device),
            has_text=self._tokenize is not None,
            text_path=(
                "tower"
                if self._tokenize is not None
                else "bridge"
                if self._bridge is not None
                else None
            ),
            weights=weights_card,
        )
        self.announce(
            log, "loaded model %s (%s, %s on %s)", self._info.version, backbone, runtime, device
        )

    def _weights_tag(self) -> str:
        if str(self.weights) in ("imagenet", "random"):
            return str(self.weights)
        path = Path(self.weights)
        return "file-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]

    def _onnx_session(self, net: object, version: str, input_size: int) -> object:
        from services.modellab.onnx import OnnxSession, export_onnx
        from shared.settings import get_settings

        cache = self.onnx_cache or get_settings().models_dir / "onnx"
        path = cache / f"{version}-{input_size}.onnx"
        if not path.is_file():
            export_onnx(net, path, input_size)  # type: ignore[arg-type]
        return OnnxSession(path, threads=self.threads)

    def _onnx_text_session(self, clip: Any, version: str) -> object:
        """The text tower's ONNX session (exported once per model and version)."""
        from services.modellab.onnx import OnnxSession, export_text_onnx
        from shared.settings import get_settings

        cache = self.onnx_cache or get_settings().models_dir / "onnx"
        path = cache / f"{version}-text-{clip.context_length}.onnx"
        if not path.is_file():
            export_text_onnx(clip.text, path, clip.context_length)
        return OnnxSession(path, threads=self.threads, input_name="tokens")

    def close(self) -> None:
        """Stop the decode threads (the model stays loaded)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ---------------------------------------------------------------------------- inference

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._session is not None:
            embedding, logits = self._session.run(batch)  # type: ignore[attr-defined]
            return _normalise(embedding), logits
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device, non_blocking=True)
            embedding, logits = self._net(x)  # type: ignore[operator]
            return (
                embedding.float().cpu().numpy(),
                None if logits is None else logits.float().cpu().numpy(),
            )

    def _decode(self, images: Sequence[ImageInput]) -> np.ndarray:
        return decode_batch(images, self.info.preprocess, self._pool)

    def _batches(
        self, images: Sequence[ImageInput]
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Model outputs per batch; the next batch decodes while the model runs."""
        chunks = (images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size))
        return self._stream(chunks)

    def _stream(
        self, groups: Iterable[Sequence[ImageInput]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Model outputs per group, in order. A prefetch thread takes the next group from
        ``groups`` (which may wait, e.g. on downloads) and decodes it while the model runs."""
        source = iter(groups)

        def produce() -> np.ndarray | None:
            group = next(source, None)
            return None if group is None else self._decode(group)

        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            pending: Future[np.ndarray | None] = prefetch.submit(produce)
            while (batch := pending.result()) is not None:
                pending = prefetch.submit(produce)
                if len(batch) == 0:
                    yield np.zeros((0, self.info.dim), np.float32), None
                else:
                    yield self._run(batch)

    def embed_stream(self, groups: Iterable[Sequence[ImageInput]]) -> Iterator[np.ndarray]:
        """Embeddings for each group of images as it comes (an empty group gives ``(0, dim)``).

        For producers that are themselves slow (ingest downloads and crops images): the next
        group is produced and decoded while the model runs the current one."""
        self.load()
        for embedding, _ in self._stream(groups):
            yield embedding

    def classify_stream(
        self, groups: Iterable[Sequence[ImageInput]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`embed_stream` with the calibrated class probabilities of the same pass."""
        self.load()
        if not self.info.classes:
            raise InvalidInputError(f"model {self.info.version} has no classifier head")
        for embedding, logits in self._stream(groups):
            if logits is None:  # an empty group
                yield embedding, np.zeros((0, len(self.info.classes)), np.float32)
            else:
                yield embedding, _softmax(logits)

    def embed(self, images: Sequence[ImageInput]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per image, in order."""
        self.load()
        outputs = [embedding for embedding, _ in self._batches(list(images))]
        if not outputs:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        return np.concatenate(outputs)

    @property
    def has_text(self) -> bool:
        """Whether the model has a text tower (:meth:`embed_text`); loads the model."""
        return self.info.has_text

    @property
    def bridge(self) -> WordBridge | None:
        """The word bridge learnt for this model, if any (loads the model)."""
        self.load()
        return self._bridge

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings of ``texts`` in the images' space, one row each,
        by the model's text tower or its word bridge (``info.text_path``); a model with
        neither raises :class:`InvalidInputError`."""
        self.load()
        texts = list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise InvalidInputError("embed_text takes strings")
        if self._tokenize is None:
            if self._bridge is None:
                raise InvalidInputError(
                    f"model {self.info.version} has no text tower and no word bridge"
                )
            from shared.words import sentence_encoder

            return self._bridge.embed(sentence_encoder(), texts)
        outputs = [np.zeros((0, self.info.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            tokens = self._tokenize(texts[start : start + self.batch_size])
            if self._text_session is not None:
                batch = tokens.numpy().astype(np.int64)
                embedding, _ = self._text_session.run(batch)  # type: ignore[attr-defined]
            else:
                torch = self._torch
                with torch.inference_mode():
                    out = self._text(tokens.to(self._device))  # type: ignore[operator]
                    embedding = out.float().cpu().numpy()
            outputs.append(_normalise(embedding))
        return np.concatenate(outputs)

    def embed_one(self, image: ImageInput) -> np.ndarray:
        """The embedding of a single image (decoded on the calling thread)."""
        self.load()
        batch = self.info.preprocess(image)[None]
        return self._run(batch)[0][0]

    def classify(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and calibrated class probabilities (``(N, n_classes)``)."""
        self.load()
        if not self.info.classes:
            raise InvalidInputError(f"model {self.info.version} has no classifier head")
        embeddings, probabilities = [], []
        for embedding, logits in self._batches(list(images)):
            assert logits is not None
            embeddings.append(embedding)
            probabilities.append(_softmax(logits))
        if not embeddings:
            n = len(self.info.classes)
            return np.zeros((0, self.info.dim), np.float32), np.zeros((0, n), np.float32)
        return np.concatenate(embeddings), np.concatenate(probabilities)

    def predict(self, images: Sequence[ImageInput], *, top: int = 5) -> list[Prediction]:
        """Embedding, colour descriptor and (with a classifier) the ``top`` categories."""
        self.load()
        info = self.info
        pictures = [info.preprocess.load(image) for image in images]
        colours = [colour_descriptor(picture) for picture in pictures]
        if info.classes:
            embeddings, probabilities = self.classify(pictures)
        else:
            embeddings, probabilities = self.embed(pictures), None
        predictions = []
        for i, embedding in enumerate(embeddings):
            if probabilities is None:
                predictions.append(Prediction(embedding=embedding, colour=colours[i]))
                continue
            order = np.argsort(-probabilities[i])[:top]
            predictions.append(
                Prediction(
                    embedding=embedding,
                    colour=colours[i],
                    category=info.classes[order[0]],
                    probability=float(probabilities[i][order[0]]),
                    probabilities={info.classes[j]: float(probabilities[i][j]) for j in order},
                )
            )
        return predictions
