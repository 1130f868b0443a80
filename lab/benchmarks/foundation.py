"""A foundation model's cost beside the default's: core-milliseconds per photo (one generated
400x500 product JPEG, decode included, one image per call as a query is embedded) for each
image tower, and per text query for the CLIP text tower. Random weights: speed does not depend
on them, and none can be downloaded here."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from lab.benchmarks import Figures, benchmark, machine
from lab.benchmarks.embedding import _jpegs

RUNS = 20
CASES = (
    # (figure name, model, weights)
    ("street_lite2", "street-lite2", "imagenet"),
    ("efficientnet_lite0", "efficientnet_lite0", "imagenet"),
    ("vit_b32", "ViT-B-32", "random"),
    ("vit_b16_siglip", "ViT-B-16-SigLIP", "random"),
)
QUERIES = ("navy tee", "red summer dress", "white leather trainers", "black hoodie")


def _core_ms(run: object, items: list[object]) -> tuple[float, float]:
    """Median wall ms and mean core ms (process CPU time, all threads) per call."""
    assert callable(run)
    for item in items[:3]:
        run(item)  # warm up
    walls = []
    cpu_started = time.process_time()
    for i in range(RUNS):
        started = time.perf_counter()
        run(items[i % len(items)])
        walls.append((time.perf_counter() - started) * 1000)
    core = (time.process_time() - cpu_started) * 1000 / RUNS
    return round(statistics.median(walls), 1), round(core, 1)


@benchmark(
    "foundation",
    "Core-ms (process CPU time, all threads) and wall ms (p50) per photo, one generated "
    "400x500 JPEG per call, decode included, ONNX Runtime on the CPU: the default embedding "
    "(street-lite2), frozen efficientnet_lite0, and the OpenCLIP ViT-B-32 and SigLIP "
    "ViT-B-16 image towers (random weights: Marqo-FashionSigLIP costs the SigLIP figure, and "
    "Marqo-FashionCLIP's ViT-B-16, the same 196 patches, about as much); then per text query "
    "through ViT-B-32's text tower.",
)
def foundation_cost() -> Figures:
    import torch

    from services.embedder.inference import Embedder

    jpegs: list[object] = list(_jpegs())
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as cache:
        for name, model, weights in CASES:
            embedder = Embedder(
                model, weights=weights, runtime="onnx", device="cpu", onnx_cache=Path(cache)
            ).load()
            wall, core = _core_ms(embedder.embed_one, jpegs)
            figures[f"{name}_photo_ms_p50"] = wall
            figures[f"{name}_photo_core_ms"] = core
            if embedder.info.text_path is not None:  # a text tower or a word bridge
                texts: list[object] = [[query] for query in QUERIES]
                wall, core = _core_ms(embedder.embed_text, texts)
                figures[f"{name}_text_query_ms_p50"] = wall
                figures[f"{name}_text_query_core_ms"] = core
            embedder.close()
    figures["torch_threads"] = torch.get_num_threads()
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the cores
    figures["machine"] = f"{machine()['cores']} cores, {machine()['cpu']}"
    return figures
