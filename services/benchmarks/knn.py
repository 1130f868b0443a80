"""k-NN in the embedded engine (Qdrant Edge): latency, memory and recall at catalog scale.

Random unit vectors of the default embedding's size (1280-d, efficientnet_lite0), a
category payload index, 100,000 points by default (``LOOKALIKE_BENCH_KNN_POINTS`` to change).
Latency is one query at a time after the HNSW index is built; recall@10 is against exact
search with numpy over the same vectors; memory is the process's resident-set growth.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from services.benchmarks import Figures, benchmark
from shared.vectors import CollectionSpec, EdgeIndex, PayloadFilter, Point, VectorSpec

DIM = 1280
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


@benchmark("knn", "Qdrant Edge k-NN (top 10) over random 1280-d unit vectors, 1 query at a time.")
def knn() -> Figures:
    n = int(os.environ.get("LOOKALIKE_BENCH_KNN_POINTS", "100000"))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.integers(0, n, QUERIES)] + rng.normal(0, 0.02, (QUERIES, DIM))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]

    with tempfile.TemporaryDirectory() as tmp:
        before = _rss_mb()
        index = EdgeIndex(Path(tmp))
        spec = CollectionSpec(
            "knn", {"cnn": VectorSpec(DIM, "cosine")}, payload_indexes={"category": "keyword"}
        )
        index.ensure_collection(spec)
        started = time.perf_counter()
        for start in range(0, n, 1000):
            index.upsert(
                "knn",
                [
                    Point(ids[i], {"cnn": vectors[i]}, {"category": CATEGORIES[i % 8]})
                    for i in range(start, min(n, start + 1000))
                ],
            )
        upsert_s = time.perf_counter() - started
        started = time.perf_counter()
        index._shard("knn").optimize()
        build_s = time.perf_counter() - started

        latencies, filtered, recalls = [], [], []
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        for q, truth in zip(queries, exact, strict=True):
            t = time.perf_counter()
            hits = index.search("knn", "cnn", q, limit=10)
            latencies.append(time.perf_counter() - t)
            found = {int(uuid.UUID(h.id)) - 1 for h in hits}
            recalls.append(len(found & set(truth.tolist())) / 10)
            t = time.perf_counter()
            index.search(
                "knn", "cnn", q, limit=10, where=PayloadFilter(equals={"category": "tops"})
            )
            filtered.append(time.perf_counter() - t)
        memory = _rss_mb() - before
        index.close()
    p50, p95 = _percentiles(latencies)
    f50, f95 = _percentiles(filtered)
    return {
        "points": n,
        "upsert_points_per_s": round(n / upsert_s),
        "hnsw_build_s": round(build_s, 1),
        "query_p50_ms": p50,
        "query_p95_ms": p95,
        "filtered_query_p50_ms": f50,
        "filtered_query_p95_ms": f95,
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "rss_growth_mb": round(memory),
    }
