"""k-NN in the embedded engine (Qdrant Edge): latency, memory and recall at catalog scale.

Random unit vectors of the shipped model's embedding size (256-d), a category payload index,
100,000 and 1,000,000 points by default (``LOOKALIKE_BENCH_KNN_POINTS``, comma-separated).
Latency is one query at a time, before and after ``optimize()`` (which quantizes to int8; the
engine keeps no HNSW graph, see :mod:`shared.vectors`); recall@10 is against exact search with
numpy over the same vectors; memory is the process's resident-set growth.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from lab.benchmarks import Figures, benchmark
from shared.vectors import CollectionSpec, EdgeIndex, PayloadFilter, Point, VectorSpec

DIM = 256
"""The shipped default model's embedding (a 256-d projection head on efficientnet_lite2)."""
QUERIES = 200
CATEGORIES = ("tops", "pants", "dresses", "skirts", "outerwear", "footwear", "bags", "hats")


def _rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return round(float(np.percentile(values, 50)), 2), round(float(np.percentile(values, 95)), 2)


def _run(n: int, dim: int) -> Figures:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.integers(0, n, QUERIES)] + rng.normal(0, 0.02, (QUERIES, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    exact = np.empty((QUERIES, 10), dtype=np.int64)
    for start in range(0, QUERIES, 50):
        scores = queries[start : start + 50] @ vectors.T
        exact[start : start + 50] = np.argsort(-scores, axis=1)[:, :10]
    del scores

    figures: Figures = {"points": n, "dim": dim}
    with tempfile.TemporaryDirectory() as tmp:
        before = _rss_mb()
        index = EdgeIndex(Path(tmp))
        spec = CollectionSpec(
            "knn", {"cnn": VectorSpec(dim, "cosine")}, payload_indexes={"category": "keyword"}
        )
        index.ensure_collection(spec)
        started = time.perf_counter()
        for start in range(0, n, 2000):
            index.upsert(
                "knn",
                [
                    Point(
                        str(uuid.UUID(int=i + 1)),
                        {"cnn": vectors[i]},
                        {"category": CATEGORIES[i % 8]},
                    )
                    for i in range(start, min(n, start + 2000))
                ],
            )
        figures["upsert_points_per_s"] = round(n / (time.perf_counter() - started))
        _measure(index, queries, exact, figures, "float_scan")
        started = time.perf_counter()
        index.optimize("knn")
        figures["optimize_s"] = round(time.perf_counter() - started, 1)
        _measure(index, queries, exact, figures, "int8_rescored")
        figures["rss_growth_mb"] = round(_rss_mb() - before)
        index.close()
    return figures


def _measure(
    index: EdgeIndex, queries: np.ndarray, exact: np.ndarray, figures: Figures, tag: str
) -> None:
    latencies, filtered, recalls = [], [], []
    tops = PayloadFilter(equals={"category": "tops"})
    for q, truth in zip(queries, exact, strict=True):
        t = time.perf_counter()
        hits = index.search("knn", "cnn", q, limit=10)
        latencies.append(time.perf_counter() - t)
        found = {int(uuid.UUID(h.id)) - 1 for h in hits}
        recalls.append(len(found & set(truth.tolist())) / 10)
        t = time.perf_counter()
        index.search("knn", "cnn", q, limit=10, where=tops)
        filtered.append(time.perf_counter() - t)
    p50, p95 = _percentiles(latencies)
    f50, f95 = _percentiles(filtered)
    figures[f"query_p50_ms_{tag}"] = p50
    figures[f"query_p95_ms_{tag}"] = p95
    figures[f"filtered_query_p50_ms_{tag}"] = f50
    figures[f"filtered_query_p95_ms_{tag}"] = f95
    figures[f"recall_at_10_{tag}"] = round(float(np.mean(recalls)), 4)


@benchmark(
    "knn",
    "Qdrant Edge k-NN (top 10), one query at a time, over random unit vectors of the shipped "
    "model's embedding size (256-d; LOOKALIKE_BENCH_KNN_DIM), at 100k and 1M points "
    "(LOOKALIKE_BENCH_KNN_POINTS), plain and filtered by category: first as written (float "
    "scan of the appendable segment), then after optimize() (int8 scan rescored on floats, "
    "the embedded engine's steady state; no HNSW graph, see shared/vectors.py). Recall@10 is "
    "against exact numpy search; random vectors with slightly perturbed queries.",
)
def knn() -> Figures:
    sizes = [
        int(v) for v in os.environ.get("LOOKALIKE_BENCH_KNN_POINTS", "100000,1000000").split(",")
    ]
    dim = int(os.environ.get("LOOKALIKE_BENCH_KNN_DIM", str(DIM)))
    figures: Figures = {}
    for n in sizes:
        for key, value in _run(n, dim).items():
            figures[f"{key}_{n // 1000}k"] = value
    return figures
