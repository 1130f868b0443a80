"""Foundation models in the backbone registry: OpenCLIP / SigLIP with random weights (nothing
can be downloaded here), both towers' ONNX export against torch, weights from a file, a
directory or the Hugging Face cache, and each missing or mismatched file's error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.embedder.inference import Embedder
from services.embedder.network import EmbeddingNet
from services.modellab.models import available_backbones, backbone_spec
from services.modellab.models.openclip import (
    ClipBackbone,
    build_clip,
    family_of_directory,
    resolve_weights,
)
from services.modellab.onnx import OnnxSession, export_onnx, export_text_onnx
from shared.errors import ConfigurationError, InvalidInputError, NotFoundError

pytestmark = [pytest.mark.unit, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def vit_b32() -> ClipBackbone:
    torch.manual_seed(0)
    return build_clip("ViT-B-32", "random")


@pytest.fixture(scope="module")
def weights_file(vit_b32: ClipBackbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ViT-B-32's open_clip state dict saved as a local file (float16, 300 MB)."""
    path = tmp_path_factory.mktemp("clip") / "vit-b-32.pt"
    state = vit_b32.text.model.state_dict()
    torch.save({key: value.half() for key, value in state.items()}, path)
    return path


def _model_cfg(arch: str) -> dict[str, object]:
    from open_clip import get_model_config

    return dict(get_model_config(arch))


def _directory(root: Path, arch: str, weights: Path | None, **extra: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": _model_cfg(arch),
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        **extra,
    }
    (root / "open_clip_config.json").write_text(json.dumps(config))
    if weights is not None:
        (root / "open_clip_pytorch_model.bin").symlink_to(weights)
    return root


def _pictures() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (30, 80), (20, 40, 190))]


def test_the_registry_lists_the_marqo_architectures() -> None:
    assert {"ViT-B-32", "ViT-B-16", "ViT-B-16-SigLIP"} <= set(available_backbones())
    assert backbone_spec("ViT-B-16").dim == 512
    siglip = backbone_spec("ViT-B-16-SigLIP")
    assert siglip.dim == 768
    # SigLIP (Marqo-FashionSigLIP): mean/std 0.5, bicubic, squashed; CLIP: OpenAI's, cropped.
    assert (siglip.preprocess.mean, siglip.preprocess.fit) == ((0.5, 0.5, 0.5), "squash")
    assert backbone_spec("ViT-B-32").preprocess.fit == "crop"
    assert siglip.preprocess.interpolation == "bicubic"


def _congruent(reference: np.ndarray, other: np.ndarray) -> None:
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    got = other / np.linalg.norm(other, axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, atol=2e-4)
    assert (ref * got).sum(axis=1).min() > 0.9999


# ViT-B-16 is ViT-B-32's code with smaller patches; the two towers' code paths are these two.
@pytest.mark.parametrize("arch", ["ViT-B-32", "ViT-B-16-SigLIP"])
def test_both_towers_in_onnx_match_torch(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    backbone = build_clip(arch, "random")
    net = EmbeddingNet(backbone).eval()
    images = torch.randn(2, 3, 224, 224)
    vocab = int(_model_cfg(arch)["text_cfg"]["vocab_size"])  # type: ignore[index]
    tokens = torch.randint(1, vocab, (3, backbone.context_length))
    with torch.inference_mode():
        image_ref, _ = net(images)
        text_ref = backbone.text(tokens)
    assert image_ref.shape == (2, backbone.dim) and text_ref.shape == (3, backbone.dim)
    image_onnx = OnnxSession(export_onnx(net, tmp_path / "image.onnx", 224)).run(images.numpy())
    text_path = export_text_onnx(backbone.text, tmp_path / "text.onnx", backbone.context_length)
    text_onnx = OnnxSession(text_path, input_name="tokens").run(tokens.numpy())
    _congruent(image_ref.numpy(), image_onnx[0])
    _congruent(text_ref.numpy(), text_onnx[0])


def test_a_weights_file_serves_images_and_words_in_one_space(
    vit_b32: ClipBackbone, weights_file: Path, tmp_path: Path
) -> None:
    embedder = Embedder(
        "ViT-B-32", weights=str(weights_file), onnx_cache=tmp_path, workers=1, licence="MIT"
    )
    assert embedder.has_text
    images = embedder.embed(_pictures())
    words = embedder.embed_text(["navy tee", "red dress", "trainers"])
    assert images.shape == (2, 512) and words.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(words, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    # The file's weights, not a fresh random init: the torch tower gives the same words.
    tokens = vit_b32.tokenize(["navy tee"])
    with torch.inference_mode():
        expected = vit_b32.text(tokens).numpy()
    np.testing.assert_allclose(words[:1], expected, atol=5e-3)
    info = embedder.info
    digest = info.weights["sha256"][weights_file.name]
    assert info.version == f"ViT-B-32-{digest[:10]}"
    assert info.weights["path"] == str(weights_file)
    assert info.weights["licence"] == "MIT"
    assert info.preprocess.interpolation == "bicubic"
    assert embedder.embed_text([]).shape == (0, 512)


def test_a_directory_in_the_hub_layout_names_its_architecture_and_licence(
    weights_file: Path, tmp_path: Path
) -> None:
    directory = _directory(tmp_path / "fashion-clip", "ViT-B-32", weights_file)
    (directory / "README.md").write_text("---\nlicense: apache-2.0\ntags: [clip]\n---\n# A model\n")
    assert family_of_directory(directory) == "ViT-B-32"
    embedder = Embedder(str(directory), runtime="torch", device="cpu", workers=1)
    info = embedder.info
    assert (info.backbone, info.has_text) == ("ViT-B-32", True)
    assert info.weights["licence"] == "apache-2.0"
    assert info.weights["path"] == str(directory)
    # The directory's preprocess_cfg wins over the family's.
    assert info.preprocess.mean == (0.5, 0.5, 0.5)
    assert embedder.embed(_pictures()).shape == (2, 512)


def test_a_model_without_a_text_tower_says_so(tmp_path: Path) -> None:
    embedder = Embedder("efficientnet_lite0", weights="random", runtime="torch", device="cpu")
    assert not embedder.has_text
    with pytest.raises(InvalidInputError, match="no text tower"):
        embedder.embed_text(["navy tee"])


# ------------------------------------------------------------------------------------ errors


def test_no_offline_weights_means_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="no weights that ship offline"):
        resolve_weights("ViT-B-16-SigLIP", "imagenet")
    with pytest.raises(NotFoundError, match="not found"):
        resolve_weights("ViT-B-16", "/nowhere/marqo-fashionCLIP.safetensors")


def test_a_directory_without_its_config_or_weights_names_the_missing_file(
    tmp_path: Path, weights_file: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(NotFoundError, match=r"no open_clip_config\.json"):
        resolve_weights("ViT-B-32", bare)
    no_weights = _directory(tmp_path / "no-weights", "ViT-B-32", None)
    with pytest.raises(NotFoundError, match=r"no weights file.*open_clip_model\.safetensors"):
        resolve_weights("ViT-B-32", no_weights)
    siglip = _directory(tmp_path / "siglip", "ViT-B-16-SigLIP", weights_file)
    with pytest.raises(NotFoundError, match=r"no tokenizer\.json"):
        resolve_weights("ViT-B-16-SigLIP", siglip)


def test_a_directory_of_another_architecture_names_the_mismatch(
    tmp_path: Path, weights_file: Path
) -> None:
    directory = _directory(tmp_path / "b32", "ViT-B-32", weights_file)
    with pytest.raises(ConfigurationError, match=r"does not describe ViT-B-16: .*patch_size 32"):
        resolve_weights("ViT-B-16", directory)
    odd = _directory(tmp_path / "odd", "ViT-B-32", weights_file)
    config = json.loads((odd / "open_clip_config.json").read_text())
    config["model_cfg"]["embed_dim"] = 256
    (odd / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="none of the registered"):
        family_of_directory(odd)


def test_mismatched_weights_fail_the_load_and_leave_nothing_loaded(
    vit_b32: ClipBackbone, tmp_path: Path
) -> None:
    state = dict(vit_b32.text.model.state_dict())
    state.pop("text_projection")
    state["visual.proj"] = torch.zeros(3, 3)
    broken = tmp_path / "broken.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(broken))
    embedder = Embedder("ViT-B-32", weights=str(broken), onnx_cache=tmp_path, workers=1)
    with pytest.raises(ConfigurationError, match=r"missing \['text_projection'\].*visual.proj"):
        embedder.load()
    assert not embedder.loaded
    assert not list(tmp_path.glob("*.onnx"))
    wrong_kind = tmp_path / "weights.txt"
    wrong_kind.write_text("not weights")
    with pytest.raises(ConfigurationError, match="not one of"):
        resolve_weights("ViT-B-32", wrong_kind)


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    yield tmp_path / "hf"


def test_hf_hub_weights_come_from_the_cache_only(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch, weights_file: Path
) -> None:
    with pytest.raises(NotFoundError, match="not in the Hugging Face cache"):
        resolve_weights("ViT-B-32", "hf-hub:Marqo/marqo-fashionCLIP")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # honoured even where downloads are allowed
    with pytest.raises(NotFoundError, match="not in the Hugging Face cache"):
        resolve_weights("ViT-B-32", "hf-hub:Marqo/marqo-fashionCLIP", allow_download=True)
    # A snapshot already in the cache (the hub's layout on disk) loads with no network.
    repo = empty_hf_cache / "hub" / "models--Marqo--marqo-fashionCLIP"
    commit = "0" * 40
    _directory(repo / "snapshots" / commit, "ViT-B-32", weights_file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_weights("ViT-B-32", "hf-hub:Marqo/marqo-fashionCLIP")
    assert source is not None and source.directory == repo / "snapshots" / commit
    assert source.licence == "unknown"
    # The cached repository alone is a model spec too: its config names the architecture.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert family_of_directory("hf-hub:Marqo/marqo-fashionCLIP") == "ViT-B-32"
    with pytest.raises(NotFoundError, match="not in the Hugging Face cache"):
        family_of_directory("hf-hub:Marqo/marqo-fashionSigLIP")


def test_a_siglip_directory_tokenizes_with_its_own_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tokenizer.json beside SigLIP's weights: words canonicalised, padded to 64."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from services.modellab.models import openclip

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "navy": 3, "tee": 4}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    config = {"model_cfg": _model_cfg("ViT-B-16-SigLIP")}
    tokenize = openclip._hf_tokenizer(tmp_path / "tokenizer.json", 64, config)
    tokens = tokenize(["Navy, TEE!", "red"])
    assert tokens.shape == (2, 64)
    assert tokens[0, :3].tolist() == [3, 4, 1]
    assert tokens[1, :2].tolist() == [2, 1]
