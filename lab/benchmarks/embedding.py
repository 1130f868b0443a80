"""Embedding throughput, decode included: batches of 32 and single images, per backbone and
runtime (eager PyTorch, ONNX Runtime), on generated product JPEGs (400x500, the demo shop's)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lab.benchmarks import Figures, benchmark

N_IMAGES = 64
BATCH = 32
CASES = (
    # (backbone, weights, batched images, single-image runs)
    ("efficientnet_lite0", "imagenet", 256, 40),
    ("resnet50", "random", 64, 10),
    ("vgg16", "random", 32, 5),
)


def _jpegs() -> list[bytes]:
    from services.demo_shop.catalog import DemoCatalog
    from services.demo_shop.images import render_image

    catalog = DemoCatalog.generate(N_IMAGES, seed=7)
    return [render_image(product, "front") for product in catalog.products]


def _measure(embedder: object, jpegs: list[bytes], n_batched: int, n_single: int) -> Figures:
    from services.embedder.inference import Embedder

    assert isinstance(embedder, Embedder)
    embedder.load()
    embedder.embed(jpegs[:BATCH])  # warm up
    items = [jpegs[i % len(jpegs)] for i in range(n_batched)]
    started = time.perf_counter()
    embedder.embed(items)
    batched = n_batched / (time.perf_counter() - started)
    for jpeg in jpegs[:3]:
        embedder.embed_one(jpeg)
    latencies = []
    for i in range(n_single):
        started = time.perf_counter()
        embedder.embed_one(jpegs[i % len(jpegs)])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "images_per_s_batch_32": round(batched, 1),
        "single_image_ms_p50": round(statistics.median(latencies), 1),
    }


def _decode_rate(jpegs: list[bytes]) -> Figures:
    from services.modellab.models import backbone_spec
    from services.modellab.models.preprocess import decode_batch, decode_pool

    preprocess = backbone_spec("efficientnet_lite0").preprocess
    items = [jpegs[i % len(jpegs)] for i in range(256)]
    with decode_pool(1) as pool:
        started = time.perf_counter()
        decode_batch(items, preprocess, pool)
        one_thread = len(items) / (time.perf_counter() - started)
    with decode_pool() as pool:
        started = time.perf_counter()
        for i in range(0, len(items), BATCH):
            decode_batch(items[i : i + BATCH], preprocess, pool)
        threads = len(items) / (time.perf_counter() - started)
    return {
        "decode_images_per_s_1_thread": round(one_thread, 1),
        "decode_images_per_s_threads": round(threads, 1),
    }


@benchmark(
    "embedding",
    "Images/s embedding batches of 32 and single-image latency (p50), decode included, on "
    "generated 400x500 JPEGs; efficientnet_lite0 with ImageNet weights at 224 px, resnet50 "
    "and vgg16 with random weights (same speed as real ones). torch = eager PyTorch, "
    "onnx = ONNX Runtime (the CPU serving default). decode = JPEG decode (draft mode), resize, "
    "crop and normalise alone.",
)
def embedding_throughput() -> Figures:
    import torch

    from services.embedder.inference import Embedder
    from services.modellab.onnx import onnxruntime_available

    torch.set_num_threads(torch.get_num_threads())
    jpegs = _jpegs()
    figures: Figures = dict(_decode_rate(jpegs))
    runtimes = ["torch", "onnx"] if onnxruntime_available() else ["torch"]
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as cache:
        for name, weights, n_batched, n_single in CASES:
            for runtime in runtimes:
                embedder = Embedder(
                    name,
                    weights=weights,
                    runtime=runtime,  # type: ignore[arg-type]
                    device="cpu",
                    batch_size=BATCH,
                    onnx_cache=Path(cache),
                )
                measured = _measure(embedder, jpegs, n_batched, n_single)
                embedder.close()
                for key, value in measured.items():
                    figures[f"{name}_{runtime}_{key}"] = value
    figures["torch_threads"] = torch.get_num_threads()
    return figures
