"""The backbone registry: every entry with random weights, weights loading and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from services.embedder.network import EmbeddingNet
from services.modellab.models import (
    Preprocess,
    available_backbones,
    backbone_spec,
    create_backbone,
)
from shared.errors import ConfigurationError, InvalidInputError, NotFoundError

pytestmark = pytest.mark.unit

EXPECTED_DIMS = {
    "efficientnet_lite0": 1280,
    "efficientnet_lite1": 1280,
    "efficientnet_lite2": 1280,
    "resnet50": 2048,
    "vgg16": 4096,
}


def test_registry_lists_the_model_zoo() -> None:
    assert set(EXPECTED_DIMS) <= set(available_backbones())


@pytest.mark.parametrize("name", sorted(EXPECTED_DIMS))
def test_random_backbone_embeds_to_unit_vectors(name: str) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name, weights="random", input_size=64)
    assert backbone.dim == EXPECTED_DIMS[name] == backbone_spec(name).dim
    assert backbone.preprocess.input_size == 64
    net = EmbeddingNet(backbone).eval()
    with torch.inference_mode():
        embedding, logits = net(torch.randn(2, 3, 64, 64))
        imagenet = backbone.imagenet_logits(backbone(torch.randn(1, 3, 64, 64)))
    assert logits is None
    assert embedding.shape == (2, EXPECTED_DIMS[name])
    assert embedding.dtype == torch.float32
    assert torch.isfinite(embedding).all()
    np.testing.assert_allclose(embedding.norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert imagenet.shape == (1, 1000)


def test_the_three_lite_trunks_side_by_side_concatenate_their_features() -> None:
    torch.manual_seed(0)
    trio = create_backbone("efficientnet_lite012", weights="random", input_size=64)
    assert trio.dim == 3840 == backbone_spec("efficientnet_lite012").dim
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        features = trio(x)
        parts = [part(x) for part in trio.features.parts]  # type: ignore[union-attr]
    assert features.shape == (2, 3840)
    torch.testing.assert_close(features, torch.cat(parts, dim=1))
    with pytest.raises(InvalidInputError, match="no ImageNet classifier"):
        trio.imagenet_logits(features)
    with pytest.raises(ConfigurationError, match="imagenet or random"):
        create_backbone("efficientnet_lite012", weights="/tmp/lite.pth")


def test_each_entry_has_its_own_preprocessing() -> None:
    lite0 = backbone_spec("efficientnet_lite0").preprocess
    lite2 = backbone_spec("efficientnet_lite2").preprocess
    vgg = backbone_spec("vgg16").preprocess
    assert (lite0.input_size, lite2.input_size, vgg.input_size) == (224, 260, 224)
    assert lite0.mean != vgg.mean  # TF-converted weights: (x - 127) / 128
    assert vgg.mean == pytest.approx((0.485, 0.456, 0.406))


def test_preprocess_resizes_keep_the_crop_fraction_and_round_trip() -> None:
    base = Preprocess(224, 256)
    smaller = base.with_input_size(192)
    assert smaller.crop_fraction == pytest.approx(base.crop_fraction, abs=0.01)
    assert base.with_input_size(160, 1.0).resize_size == 160
    assert Preprocess.from_dict(smaller.to_dict()) == smaller
    with pytest.raises(InvalidInputError):
        Preprocess(224, 200)


def test_squash_keeps_a_tall_crop_whole() -> None:
    """A tall garment crop (red neckline, blue hem): the centre crop loses both ends, the squash
    keeps them; cards written before ``fit`` existed read as ``crop``."""
    from PIL import Image

    tall = Image.new("RGB", (40, 120), (0, 255, 0))
    tall.paste((255, 0, 0), (0, 0, 40, 20))
    tall.paste((0, 0, 255), (0, 100, 40, 120))
    crop = Preprocess(32, 32).geometry(tall)
    squash = Preprocess(32, 32, fit="squash").geometry(tall)
    assert crop.size == squash.size == (32, 32)
    assert crop.getpixel((16, 1)) == crop.getpixel((16, 30)) == (0, 255, 0)
    red, green, blue = (
        squash.getpixel((16, 1)),
        squash.getpixel((16, 16)),
        squash.getpixel((16, 30)),
    )
    assert red[0] > 200 and green[1] > 200 and blue[2] > 200
    squashing = Preprocess(224, 256, fit="squash")
    assert Preprocess.from_dict(squashing.to_dict()) == squashing
    assert squashing.with_input_size(192).fit == "squash"
    old = {k: v for k, v in Preprocess(224, 256).to_dict().items() if k != "fit"}
    assert Preprocess.from_dict(old).fit == "crop"
    with pytest.raises(InvalidInputError, match="fit must be crop or squash"):
        Preprocess(224, 256, fit="stretch")  # type: ignore[arg-type]


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="efficientnet_lite0"):
        create_backbone("alexnet")


def test_missing_torchvision_weights_name_the_setting_and_the_offline_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigurationError) as info:
        create_backbone("resnet50")
    message = str(info.value)
    assert "TORCH_HOME" in message
    assert "resnet50-" in message
    assert "efficientnet_lite0" in message


def test_torchvision_weights_load_from_the_torch_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import resnet50

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(1)
    reference = resnet50(weights=None).eval()
    torch.save(reference.state_dict(), cache / "resnet50-11ad3fa6.pth")
    backbone = create_backbone("resnet50", input_size=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.imagenet_logits(backbone(x)), reference(x))


def test_weights_from_a_file_path(tmp_path: Path) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(2)
    original = EfficientNet.from_name("efficientnet-lite0", image_size=64).eval()
    path = tmp_path / "lite0.pth"
    torch.save(original.state_dict(), path)
    backbone = create_backbone("efficientnet_lite0", weights=path, input_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.imagenet_logits(backbone(x)), original(x))


def test_bad_weight_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        create_backbone("efficientnet_lite0", weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigurationError, match="do not fit"):
        create_backbone("efficientnet_lite0", weights=wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigurationError, match="cannot read"):
        create_backbone("efficientnet_lite0", weights=garbage)
