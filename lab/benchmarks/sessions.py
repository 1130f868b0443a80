""" "Based on what you viewed": the cost of a session query at catalog scale.

The catalog and index of the recommend benchmark (:func:`lab.benchmarks.recommend.build`:
``PRODUCTS`` products, one point each, random unit vectors of the active model's size, 8
categories, 5% inactive) are answered in process by the gateway's pipeline
(:meth:`RecommendPipeline.from_session`, k = 12): each session is four products viewed in one
category and one in another, with one "not for me" product of the first category (two groups,
two recommend queries each: shape, then colour on the candidates). Reported: core-ms per
session query (process CPU time, all threads) and the median wall ms, for the whole pipeline
(with the catalog's checks and hydration) and for the recommender's part alone; one product's
"more like this" beside it on the same index.
"""

from __future__ import annotations

import os
import random
import tempfile
from functools import partial
from pathlib import Path

from lab.benchmarks import Figures, benchmark, cost_per_call, machine

PRODUCTS = int(os.environ.get("LOOKALIKE_BENCH_SESSIONS_PRODUCTS", "100000"))
RUNS = 60


@benchmark(
    "sessions",
    f'A "based on what you viewed" query on the gateway\'s pipeline in process, {PRODUCTS:,} '
    "products: core-ms per session (4 viewed of one category, 1 of another, 1 not for me; "
    "process CPU time, all threads) and wall ms (p50), the recommender's part alone, and one "
    "product's more-like-this on the same index.",
)
def sessionscost_per_call() -> Figures:
    from lab.benchmarks.recommend import _settings, build
    from lab.wiring import gateway_pipeline
    from services.gateway.schemas import RecommendParams, ViewedProduct
    from services.gateway.sessions import session_query
    from shared.db import Catalog
    from shared.download import make_client
    from shared.vectors import EdgeIndex

    figures: Figures = {"products": PRODUCTS}
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-sessions-") as tmp:
        data_dir = Path(tmp)
        figures.update({f"build_{k}": v for k, v in build(data_dir, PRODUCTS).items()})
        settings = _settings(data_dir)
        catalog = Catalog.from_settings(settings)
        index = EdgeIndex(settings.qdrant_path or data_dir / "qdrant")
        try:
            by_category: dict[str, list[int]] = {}
            for row in catalog.run_query(
                "SELECT id, category FROM products WHERE active ORDER BY id", max_rows=PRODUCTS
            ):
                by_category.setdefault(row["category"], []).append(row["id"])
            rng = random.Random(0)  # noqa: S311 - benchmark data
            categories = sorted(by_category)
            sessions = []
            for _ in range(RUNS + 2):
                first, second = rng.sample(categories, 2)
                picked = rng.sample(by_category[first], 5)
                viewed = [*picked[:4], rng.choice(by_category[second])]
                sessions.append(([ViewedProduct(product_id=p) for p in viewed], [picked[4]]))
            params = RecommendParams(k=12)
            with (
                make_client(timeout_s=5.0) as http,
                gateway_pipeline(settings, catalog, index, http) as pipeline,
            ):
                figures.update(
                    cost_per_call(
                        "session",
                        [partial(pipeline.from_session, v, n, params) for v, n in sessions],
                    )
                )
                ranking = pipeline._ranking(params)
                half_life = settings.gateway.session_half_life_h
                queries = [session_query(v, n, params, ranking, half_life) for v, n in sessions]
                figures.update(
                    cost_per_call(
                        "session_recommender",
                        [partial(pipeline.recommender.recommend_session, q) for q in queries],
                    )
                )
                figures.update(
                    cost_per_call(
                        "more_like_this",
                        [
                            partial(pipeline.from_product, v[0].product_id, params)
                            for v, _ in sessions
                        ],
                    )
                )
        finally:
            index.close()
            catalog.dispose()
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the cores
    figures["machine"] = f"{machine()['cores']} cores, {machine()['cpu']}"
    return figures
