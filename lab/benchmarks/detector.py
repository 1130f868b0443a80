"""Garment detector: quality on the held-out street photos (when ``../shared/data`` is there)
and latency per 640-px image, decode included, for the shipped default detector."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from lab.benchmarks import Figures, benchmark

STREET_DATA = Path(
    os.environ.get(
        "LOOKALIKE_STREET_BOXES",
        str(Path(__file__).resolve().parents[3] / "shared" / "data" / "street-photos-boxes-dev"),
    )
)
"""The street-photo boxes beside the repository (``../shared/data``); optional."""


def _product_latency(n: int = 30) -> float:
    """Milliseconds per demo-shop product shot (400x500 JPEG): the foreground path."""
    from services.demo_shop.catalog import DemoCatalog
    from services.demo_shop.images import render_image
    from services.detector.loader import LazyDetector
    from shared.images import load_image
    from shared.settings import get_settings

    detector = LazyDetector(get_settings().detector)
    jpegs = [render_image(p) for p in DemoCatalog.generate(n, seed=9).products]
    detector.detect([load_image(jpegs[0])])
    times = []
    for data in jpegs:
        started = time.perf_counter()
        detector.detect([load_image(data)])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _street_latency(n: int = 30) -> Figures:
    """Latency on generated 640-px street photos (no data needed)."""
    from services.demo_shop.catalog import DemoCatalog
    from services.demo_shop.images import compose_outfit
    from services.detector.loader import LazyDetector
    from shared.images import load_image
    from shared.settings import get_settings

    detector = LazyDetector(get_settings().detector)
    products = DemoCatalog.generate(40, seed=9).products
    uppers = [p for p in products if p.category in ("tops", "outerwear", "dresses")]
    lowers = [p for p in products if p.category in ("pants", "skirts")]
    jpegs = [
        compose_outfit(uppers[i % len(uppers)], lowers[i % len(lowers)], (480, 640), seed=i).jpeg
        for i in range(n)
    ]
    for data in jpegs[:3]:
        detector.detect([load_image(data)])
    times = []
    for data in jpegs:
        started = time.perf_counter()
        detector.detect([load_image(data)])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    batch = [load_image(data) for data in jpegs[:16]]
    started = time.perf_counter()
    detector.detect(batch)
    batched = len(batch) / (time.perf_counter() - started)
    return {
        "generated_street_640px_ms_p50": round(statistics.median(times), 1),
        "generated_street_640px_ms_p95": round(times[int(0.95 * (len(times) - 1))], 1),
        "generated_street_images_per_s_batch_16": round(batched, 1),
    }


@benchmark(
    "detector",
    "Shipped detector: recall/precision/mAP at IoU 0.5 on the held-out split of "
    "street-photos-boxes-dev (if present), latency per 640-px image (JPEG decode included, one "
    "image per call) and per demo product shot (foreground path).",
)
def detector_figures() -> Figures:
    figures: Figures = {}
    figures.update(_street_latency())
    figures["product_shot_ms_p50"] = _product_latency()
    if (STREET_DATA / "boxes.csv").is_file():
        from lab.detector.cli import run_evaluation
        from shared.errors import ConfigurationError

        try:
            report = run_evaluation(STREET_DATA, None, which="val")
        except ConfigurationError as exc:
            # The shipped detector trained on every photo: no held-out figures here; they come
            # from its recipe's split run (`lookalike eval-detector`, BENCHMARKS.md).
            figures["quality"] = f"skipped: {exc}"
            return figures
        figures["split"] = f"{report['split']} ({report['n_images']} images)"
        for key in ("recall@0.5", "precision@0.5", "map@0.5", "map@0.5_targets"):
            figures[key] = report[key]
        for name, values in report["per_category"].items():
            figures[f"{name}_recall"] = values["recall"]
            figures[f"{name}_precision"] = values["precision"]
        figures["street_640px_ms_p50"] = report["latency_ms_p50"]
        figures["street_640px_ms_p95"] = report["latency_ms_p95"]
    else:
        figures["quality"] = f"skipped: {STREET_DATA} not found"
    return figures
