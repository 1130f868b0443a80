"""The inference wrapper: inputs of every kind, batching, normalisation, idempotent loading,
ONNX Runtime parity with PyTorch, and the colour descriptor."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.demo_shop.catalog import generate_product
from services.demo_shop.images import render_image
from services.embedder.inference import Embedder
from services.embedder.network import EmbeddingNet
from services.modellab.models import create_backbone
from services.modellab.onnx import OnnxSession, export_onnx
from shared.colour import COLOUR_DIM, colour_descriptor, colour_similarity
from shared.errors import InvalidInputError
from shared.images import ImageError

pytestmark = pytest.mark.unit


def _jpegs(n: int) -> list[bytes]:
    return [render_image(generate_product(3, i), "front", size=(240, 300)) for i in range(n)]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder("efficientnet_lite0", runtime="torch", device="cpu", batch_size=3).load()


def test_paths_bytes_and_pil_images_embed_alike(embedder: Embedder, tmp_path: Path) -> None:
    jpegs = _jpegs(4)
    path = tmp_path / "a.jpg"
    path.write_bytes(jpegs[0])
    pil = Image.open(io.BytesIO(jpegs[0]))
    vectors = embedder.embed([path, jpegs[0], pil, str(path)])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], 4, axis=0), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_one(jpegs[0]), vectors[0], atol=1e-5)


def test_batches_keep_the_order(embedder: Embedder) -> None:
    jpegs = _jpegs(7)
    together = embedder.embed(jpegs)  # batches of 3, 3 and 1
    alone = np.stack([embedder.embed_one(jpeg) for jpeg in jpegs])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert embedder.embed([]).shape == (0, 1280)


def test_bad_images_raise_typed_errors(embedder: Embedder) -> None:
    with pytest.raises(ImageError):
        embedder.embed([b"<html>not an image</html>"])


def test_load_is_idempotent_and_safe_under_concurrency() -> None:
    embedder = Embedder("efficientnet_lite0", runtime="torch", device="cpu")
    threads = [threading.Thread(target=embedder.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    net = embedder._net
    assert embedder.load() is embedder
    assert embedder._net is net
    info = embedder.info
    assert (info.name, info.version, info.dim) == (
        "efficientnet_lite0",
        "efficientnet_lite0-imagenet",
        1280,
    )
    assert info.classes == ()


def test_models_without_a_head_do_not_classify(embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="no classifier"):
        embedder.classify(_jpegs(1))
    prediction = embedder.predict(_jpegs(1))[0]
    assert prediction.category is None
    assert prediction.colour.shape == (COLOUR_DIM,)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="efficientnet_lite0"):
        Embedder("no-such-model").load()
    with pytest.raises(InvalidInputError):
        Embedder(batch_size=0)
    with pytest.raises(InvalidInputError):
        Embedder(runtime="tensorrt")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- ONNX


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_runtime_matches_pytorch_for_the_default_backbone(tmp_path: Path) -> None:
    jpegs = _jpegs(5)
    torch_vectors = Embedder("efficientnet_lite0", runtime="torch", device="cpu").embed(jpegs)
    onnx = Embedder("efficientnet_lite0", runtime="onnx", onnx_cache=tmp_path)
    onnx_vectors = onnx.embed(jpegs)
    assert onnx.info.runtime == "onnx"
    assert list(tmp_path.glob("*.onnx"))
    assert _cosines(torch_vectors, onnx_vectors).min() >= 0.999


def test_onnx_export_keeps_the_heads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0", weights="random", input_size=96)
    net = EmbeddingNet(backbone, n_classes=3, projection_dim=16).eval()
    net.temperature.fill_(1.7)
    path = export_onnx(net, tmp_path / "net.onnx", 96)
    x = torch.randn(4, 3, 96, 96)
    with torch.inference_mode():
        embedding, logits = net(x)
    onnx_embedding, onnx_logits = OnnxSession(path).run(x.numpy())
    assert onnx_embedding.shape == (4, 16)
    assert logits is not None and onnx_logits is not None
    assert _cosines(embedding.numpy(), onnx_embedding).min() >= 0.999
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-3, rtol=1e-3)


# -------------------------------------------------------------------------------- colour


def _garment(colour: str, *, category: str = "tops", variant: int = 0) -> Image.Image:
    base = generate_product(0, 0, category=category)
    product = replace(base, colour=colour, pattern="solid", variant=variant)
    return Image.open(io.BytesIO(render_image(product, "front")))


def test_colour_descriptor_is_a_compact_unit_vector() -> None:
    descriptor = colour_descriptor(_garment("red"))
    assert descriptor.shape == (COLOUR_DIM,)
    assert 24 <= COLOUR_DIM <= 64
    assert descriptor.dtype == np.float32
    assert np.linalg.norm(descriptor) == pytest.approx(1.0, abs=1e-5)


def test_same_garment_same_colour_and_red_differs_from_blue() -> None:
    red = colour_descriptor(_garment("red"))
    assert colour_similarity(red, colour_descriptor(_garment("red"))) == pytest.approx(1.0)
    other_red = colour_descriptor(_garment("red", category="pants", variant=3))
    blue = colour_descriptor(_garment("blue"))
    assert colour_similarity(red, other_red) > 0.8
    assert colour_similarity(red, blue) < 0.5
    assert colour_similarity(red, other_red) > colour_similarity(red, blue) + 0.3


def test_background_is_suppressed() -> None:
    # A small red square on a large plain white background reads as red, not white.
    img = Image.new("RGB", (200, 200), (250, 250, 250))
    img.paste((200, 20, 30), (70, 70, 130, 130))
    descriptor = colour_descriptor(img)
    red = colour_descriptor(Image.new("RGB", (50, 50), (200, 20, 30)))
    white = colour_descriptor(Image.new("RGB", (50, 50), (250, 250, 250)))
    assert colour_similarity(descriptor, red) > 0.9
    assert colour_similarity(descriptor, white) < 0.3


def test_the_shipped_street_model_loads_by_name() -> None:
    from services.embedder.artifact import SHIPPED_DIR, load_card, shipped_models

    assert "street-lite0" in shipped_models()
    size = sum(f.stat().st_size for f in (SHIPPED_DIR / "street-lite0").iterdir())
    assert size < 15 * 1024 * 1024
    card = load_card(SHIPPED_DIR / "street-lite0")
    embedder = Embedder("street-lite0", runtime="torch", device="cpu")
    [prediction] = embedder.predict(_jpegs(1))
    assert embedder.info.version == card.version
    assert embedder.info.classes == tuple(card.classes)
    assert prediction.category in card.classes
    assert prediction.embedding.shape == (card.embedding_dim,)
    assert sum(prediction.probabilities.values()) <= 1.0 + 1e-5


def test_a_stream_classifies_in_the_embedding_pass(embedder: Embedder) -> None:
    street = Embedder("street-lite0", runtime="torch", device="cpu", batch_size=4)
    images = _jpegs(5)
    streamed = list(street.classify_stream([images[:3], [], images[3:]]))
    assert [len(e) for e, _ in streamed] == [3, 0, 2]
    assert streamed[1][1].shape == (0, len(street.info.classes))
    embeddings, probabilities = street.classify(images)
    np.testing.assert_allclose(np.concatenate([e for e, _ in streamed]), embeddings, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([p for _, p in streamed]), probabilities, atol=1e-5)
    with pytest.raises(InvalidInputError, match="no classifier"):
        next(embedder.classify_stream([images]))


def test_query_crops_carry_every_class_probability() -> None:
    """The gateway rules out a class the classifier all but excludes, so no class is cut off."""
    from services.embedder.service import EmbedderService

    street = Embedder("street-lite0", runtime="torch", device="cpu")

    class OneModel:
        def current(self) -> Embedder:
            return street

        def active_spec(self) -> tuple[str, bool]:
            return "street-lite0", True

    service = EmbedderService(OneModel())  # type: ignore[arg-type]
    [crop] = service.features([Image.open(io.BytesIO(_jpegs(1)[0]))]).crops
    shares = list(crop.probabilities.values())
    assert shares == sorted(shares, reverse=True)
    assert set(crop.probabilities) == set(street.info.classes)
    assert sum(crop.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
