"""A tiny fine-tuning run on generated garment pictures, the model artifact, and the
``lookalike train`` / ``lookalike eval`` commands on a generated labelled folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lab.embedder.data import load_labelled
from lab.embedder.training import TrainConfig, train
from services.cli import main
from services.demo_shop.catalog import generate_product
from services.demo_shop.images import render_image
from services.embedder.artifact import load_card, load_model
from services.embedder.inference import Embedder
from shared.settings import get_settings

pytestmark = pytest.mark.integration

CATEGORIES = ("tops", "pants", "bags")
EVAL_KEYS = {"p@1", "p@5", "p@10", "map@10", "accuracy", "n_images"}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ONNX exports cached by the commands land in a temporary data dir, not the user's."""
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def garments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 drawn products per category, varied colours and patterns, in class folders."""
    root = tmp_path_factory.mktemp("garments")
    for category in CATEGORIES:
        (root / category).mkdir()
        for i in range(12):
            product = generate_product(5, i, category=category)
            jpeg = render_image(product, "front", size=(96, 120))
            (root / category / f"{product.sku}.jpg").write_bytes(jpeg)
    return root


TINY = TrainConfig(
    input_size=64,
    val_fraction=0.25,
    batch_size=8,
    feature_views=1,
    head_epochs=15,
    finetune_epochs=2,
    max_minutes=None,
    device="cpu",
    projection_dim=16,
)


@pytest.fixture(scope="module")
def model_dir(garments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    train(load_labelled(garments), out, TINY, progress=False)
    return out


def test_fine_tuning_beats_chance_and_writes_a_model_card(model_dir: Path, garments: Path) -> None:
    card = load_card(model_dir)
    assert card.classes == sorted(CATEGORIES)
    assert card.backbone == "efficientnet_lite0"
    assert card.input_size == 64
    assert card.version.startswith("tiny-")
    assert card.metrics["n_images"] == 9
    assert card.metrics["accuracy"] > 0.6  # chance is 1/3
    assert {"p@1", "p@10", "map@10", "ece", "ece_before_calibration"} <= set(card.metrics)
    assert card.embedding_source in ("backbone", "projection")
    assert card.temperature > 0
    assert card.data["fingerprint"] == load_labelled(garments).fingerprint()
    assert card.data["n_train"] == 27
    assert card.training["time_s"] > 0
    assert card.training["config"]["seed"] == 0
    assert (model_dir / "weights.pt").stat().st_size == card.weights_bytes


def test_the_artifact_loads_and_classifies(model_dir: Path, garments: Path) -> None:
    net, card = load_model(model_dir)
    assert net.n_classes == 3
    embedder = Embedder(model_dir, runtime="torch")
    images = (
        sorted((garments / "bags").glob("*.jpg"))[:2]
        + sorted((garments / "tops").glob("*.jpg"))[:2]
    )
    predictions = embedder.predict(images, top=2)
    assert embedder.info.version == card.version
    for prediction in predictions:
        assert prediction.category in CATEGORIES
        assert prediction.probability is not None and 0 < prediction.probability <= 1
        assert len(prediction.probabilities) == 2
        assert np.linalg.norm(prediction.embedding) == pytest.approx(1.0, abs=1e-4)
    onnx = Embedder(model_dir, runtime="onnx", onnx_cache=model_dir / "onnx")
    torch_vectors, torch_probs = embedder.classify(images)
    onnx_vectors, onnx_probs = onnx.classify(images)
    assert (torch_vectors * onnx_vectors).sum(axis=1).min() >= 0.999
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-3)


def test_eval_command_on_a_generated_folder(
    model_dir: Path, garments: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "eval.json"
    result = runner.invoke(
        main,
        ["eval", "--data", str(garments), "--model", str(model_dir), "--split", "val",
         "--json", str(out), "--metric", "l1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) >= EVAL_KEYS
    assert report["n_images"] == 9  # the training run's validation split, reproduced
    assert report["data_matches_training"] is True
    assert report["runtime"] == "onnx"
    assert list((tmp_path / "data" / "models" / "onnx").glob("tiny-*.onnx"))
    assert report["accuracy"] == pytest.approx(load_card(model_dir).metrics["accuracy"], abs=0.12)
    assert report["accuracy_method"] == "model classifier head"
    assert np.array(report["confusion_matrix"]).sum() == 9
    assert Path(report["plot"]).stat().st_size > 0

    frozen = runner.invoke(main, ["eval", "--data", str(garments), "--runtime", "torch"])
    assert frozen.exit_code == 0, frozen.output
    figures = json.loads(frozen.stdout.splitlines()[0])
    assert set(figures) == EVAL_KEYS
    assert figures["n_images"] == 36
    assert "logistic-regression probe" in frozen.stdout


def test_train_command(garments: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(garments), "--out", str(out), "--input-size", "64",
         "--epochs", "1", "--head-epochs", "5", "--val-fraction", "0.25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "validation (9 images)" in result.output
    assert load_card(out).training["config"]["finetune_epochs"] == 1


@pytest.fixture(scope="module")
def street_boxes(garments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A boxes CSV over "street photos" (the drawn products), labelled in other words."""
    root = tmp_path_factory.mktemp("boxes")
    (root / "images").mkdir()
    words = {"tops": "blouse", "pants": "jeans", "bags": "purse"}
    rows = ["filename,category,x1,y1,x2,y2"]
    for category, word in words.items():
        for i, image in enumerate(sorted((garments / category).glob("*.jpg"))[:6]):
            name = f"{category}-{i}.jpg"
            (root / "images" / name).write_bytes(image.read_bytes())
            rows.append(f"{name},{word},4,6,90,110")
    rows.append("tops-0.jpg,bracelet,0,0,20,20")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root / "boxes.csv"


def test_train_command_with_extra_sources(
    garments: Path, street_boxes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mixed"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(garments), "--extra", str(street_boxes), "--alias", "jeans=pants",
         "--weight", "1", "--weight", "0.5", "--balance-classes", "--epoch-images", "16",
         "--out", str(out), "--input-size", "64", "--epochs", "1", "--head-epochs", "5",
         "--val-fraction", "0.25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "validation (9 images)" in result.output  # the primary's split, as without extras
    card = load_card(out)
    assert card.classes == sorted(CATEGORIES)
    assert card.data["n_train"] == 27 + 13  # 5 of the 18 photos (30 %) held out
    primary, extra = card.data["sources"]
    assert primary["source"] == str(garments) and primary["n_images"] == 36
    assert extra["class_counts"] == {"bags": 4, "pants": 4, "tops": 5}
    assert extra["weight"] == 0.5
    assert card.data["skipped"] == {f"{street_boxes}: not one of the classes": 1}
    [checked] = card.metrics["checks"]  # the crops of the held-out photos
    assert checked["n_images"] == 5 and 0 <= checked["accuracy"] <= 1
    assert card.training["config"]["balance_classes"] is True
    assert card.training["config"]["epoch_images"] == 16


@pytest.fixture(scope="module")
def shop_csv(garments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop catalog over the drawn products, in its own (finer) words."""
    root = tmp_path_factory.mktemp("shop")
    (root / "images").mkdir()
    words = {"tops": ("Tshirts", "Shirts"), "pants": ("Track Pants", "Trousers"),
             "bags": ("Handbags", "Backpacks")}  # fmt: skip
    rows = ["filename,articleType"]
    for category, (first, second) in words.items():
        for i, image in enumerate(sorted((garments / category).glob("*.jpg"))):
            name = f"{category}-{i}.jpg"
            (root / "images" / name).write_bytes(image.read_bytes())
            rows.append(f"{name},{first if i % 2 else second}")
    rows.append("tops-0.jpg,Watches")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_train_command_with_a_shop_measures_street_to_shop(
    garments: Path, shop_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shop-model"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(garments), "--shop", str(shop_csv), "--out", str(out),
         "--input-size", "64", "--epochs", "0", "--head-epochs", "5", "--val-fraction", "0.25",
         "--holdout-shop", "0.25", "--fit", "squash"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = load_card(out)
    assert card.preprocess["fit"] == "squash"
    assert card.data["n_train"] == 27 + 24  # 2 of each shop label's 6 photos held out
    retrieval = card.metrics["street_to_shop"]
    assert retrieval["n_shop"] == 36 and retrieval["n_shop_queries"] == 12
    assert retrieval["n_street_queries"] == 9
    for figures in (retrieval["embedding"], retrieval["backbone_features"]):
        assert 0 <= figures["street_to_shop_p@10"] <= 1
        assert 0 <= figures["shop_to_shop_p@10"] <= 1
    [held] = card.metrics["checks"]
    assert held["n_images"] == 12 and "held-out photos of" in held["source"]
    assert "retrieval, embedding only" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alias", "jeans"], "'jeans' is not LABEL=CLASS"),
        (["--alias", "jeans=trousers"], "not classes of"),
        (["--weight", "1", "--weight", "1", "--weight", "1"], "3 weights for 2 sources"),
        (["--weight", "-1"], "-1"),
    ],
)
def test_train_command_refuses_bad_source_options(
    garments: Path, street_boxes: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(garments), "--extra", str(street_boxes),
         "--out", str(tmp_path / "m"), *args],
    )  # fmt: skip
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "m").exists()


def test_train_command_reports_bad_input(tmp_path: Path) -> None:
    (tmp_path / "one" / "only").mkdir(parents=True)
    result = CliRunner().invoke(
        main, ["train", "--data", str(tmp_path / "one"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0
    assert "no class folders with images" in result.output


@pytest.mark.parametrize("backbone_weights", ["imagenet", "included"])
def test_artifacts_round_trip(tmp_path: Path, backbone_weights: str) -> None:
    import torch

    from services.embedder.artifact import ModelCard, save_model
    from services.embedder.network import EmbeddingNet
    from services.modellab.models import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0", input_size=64)
    backbone.drop_imagenet_head()
    net = EmbeddingNet(backbone, n_classes=2, projection_dim=8).eval()
    net.set_temperature(1.5)
    card = ModelCard(
        name="roundtrip",
        backbone="efficientnet_lite0",
        input_size=64,
        preprocess=backbone.preprocess.to_dict(),
        embedding_dim=8,
        embedding_source="projection",
        projection_dim=8,
        classes=["a", "b"],
        backbone_weights=backbone_weights,
    )
    saved = save_model(net, card, tmp_path / "m")
    heads_only = backbone_weights == "imagenet"
    assert (saved.weights_bytes < 100_000) is heads_only
    loaded, loaded_card = load_model(tmp_path / "m")
    assert loaded_card.version == saved.version
    assert float(loaded.temperature) == pytest.approx(1.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        (a, la), (b, lb) = net(x), loaded(x)
    assert la is not None and lb is not None
    torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(la, lb, atol=2e-2, rtol=1e-2)


def test_validation_features_follow_the_weights(tmp_path: Path) -> None:
    """Stage 2 validates on the backbone's current weights: after an update the feature runner
    exports a new ONNX file instead of reading the first export again."""
    import torch

    from lab.embedder.batches import FeatureRunner
    from services.embedder.network import EmbeddingNet
    from services.modellab.models import create_backbone

    torch.manual_seed(0)
    net = EmbeddingNet(create_backbone("efficientnet_lite0", "random", input_size=32), 3)
    runner = FeatureRunner(net, torch.device("cpu"), tmp_path, 32)
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    before = next(runner.features(iter([batch])))
    with torch.no_grad():
        for p in net.backbone.parameters():
            p.mul_(1.5)
    runner.invalidate()
    after = next(runner.features(iter([batch])))
    with torch.inference_mode():
        expected = net.backbone(torch.from_numpy(batch)).numpy()
    assert not np.allclose(before, after, atol=1e-3)
    np.testing.assert_allclose(after, expected, atol=1e-3)
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["backbone-1.onnx"]


def test_an_interrupted_training_resumes_from_its_checkpoint(
    garments: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by its time budget after stage-2 epoch 1 goes on from its checkpoint
    without redoing stage 1, and ends where an uninterrupted run ends."""
    from lab.embedder import stages
    from shared.errors import InvalidInputError

    images = load_labelled(garments)
    checkpoint = tmp_path / "run.pt"
    stopped = train(
        images, tmp_path / "first", replace(TINY, max_minutes=1e-6), progress=False,
        checkpoint=checkpoint,
    )  # fmt: skip
    assert [row["epoch"] for row in stopped.card.training["history"]] == [0, 1]

    def no_stage1(*_: object) -> None:
        raise AssertionError("stage 1 ran again")

    monkeypatch.setattr(stages, "frozen_features", no_stage1)
    resumed = train(images, tmp_path / "second", TINY, progress=False, checkpoint=checkpoint)
    whole = load_card(model_dir).training
    history = resumed.card.training["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2]
    for got, expected in zip(history, whole["history"], strict=True):
        assert got["val_loss"] == pytest.approx(expected["val_loss"], abs=0.02)
        assert got["val_accuracy"] == pytest.approx(expected["val_accuracy"], abs=0.12)
    assert resumed.card.training["best_epoch"] == whole["best_epoch"]
    assert resumed.card.training["stage1"] == stopped.card.training["stage1"]
    assert resumed.card.training["time_s"] > stopped.card.training["time_s"]
    assert resumed.card.training["timings_s"]["features_s"] == pytest.approx(
        stopped.card.training["timings_s"]["features_s"], abs=0.1
    ), "the first run's feature time, carried over"

    with pytest.raises(InvalidInputError, match="other data or settings"):
        train(images, tmp_path / "third", replace(TINY, seed=1), progress=False,
              checkpoint=checkpoint)  # fmt: skip


def test_train_command_refuses_a_broken_checkpoint(garments: Path, tmp_path: Path) -> None:
    broken = tmp_path / "run.pt"
    broken.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(garments), "--out", str(tmp_path / "m"), "--input-size", "64",
         "--epochs", "1", "--head-epochs", "2", "--checkpoint", str(broken)],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "is not a readable training checkpoint" in result.output
    assert broken.read_bytes() == b"not a checkpoint", "the file is left as it was"
    assert not (tmp_path / "m").exists()
