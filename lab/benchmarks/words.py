"""Words alone on ``/recommend``: the cost of a text query at the offline default.

A generated shop of ``PRODUCTS`` products (the demo shop's titles, brands, colours and
categories) goes into a SQLite catalog, its text points as ingest writes them (the sentence
model and the lexical vector) and one image point per product (a random unit vector of the
shipped model's size, its garment class from the category) into the embedded index. The
gateway's pipeline then answers typed queries in process (:meth:`RecommendPipeline.from_text`)
by each path: the products' text, the pictures (the shipped model's word bridge), and both fused
(the default). Reported per path: core-ms per query (process CPU time, all threads) and the
median wall ms; and the sentence model alone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lab.benchmarks import Figures, benchmark, cost_per_call, machine

PRODUCTS = 5000
RUNS = 60
QUERIES = (
    "navy tee",
    "red summer dress",
    "white leather trainers",
    "black hoodie",
    "grey wool coat",
    "pink skirt",
    "brown leather bag",
    "blue denim jeans",
)


def _shop(data_dir: Path) -> Any:
    """The generated shop in ``data_dir``: settings, catalog and index."""
    from services.demo_shop.catalog import DemoCatalog
    from services.embedder.provider import ModelProvider
    from services.ingest import indexing
    from shared import index_layout
    from shared.colour import COLOUR_DIM
    from shared.db import Catalog, ImageIn, ProductIn, SourceIn
    from shared.settings import Settings
    from shared.taxonomy import garment_class
    from shared.vectors import EdgeIndex, Point
    from shared.words import sentence_encoder

    settings = Settings(_env_file=None, data_dir=data_dir)
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    source = catalog.upsert_source(SourceIn(name="bench", base_url="https://shop.example"))
    demo = DemoCatalog.generate(PRODUCTS, seed=3).products
    for start in range(0, len(demo), 1000):
        catalog.upsert_products(
            source.id,
            [
                ProductIn(
                    canonical_url=f"https://shop.example/p/{p.sku}",
                    title=p.title,
                    brand=p.brand,
                    price=p.price,
                    currency=p.currency,
                    category=p.category,
                    images=(ImageIn(url=f"https://shop.example/i/{p.sku}.jpg"),),
                )
                for p in demo[start : start + 1000]
            ],
        )
    models = ModelProvider(catalog, settings)
    info = models.current().info
    models.close()
    index = EdgeIndex(settings.qdrant_path or data_dir / "qdrant")
    products = catalog.list_products(limit=PRODUCTS + 10)
    encoder = sentence_encoder()
    for start in range(0, len(products), 64):
        chunk = products[start : start + 64]
        indexing.index_texts(
            index,
            encoder,
            [indexing.ProductText(p, source.name, garment_class(p.category), None) for p in chunk],
        )
    collection = indexing.ensure_collection(index, info.version, info.dim)
    rng = np.random.default_rng(0)
    points = []
    for product in products:
        garment = garment_class(product.category)
        raw = np.abs(rng.standard_normal(info.dim))
        vector = (raw / np.linalg.norm(raw)).tolist()
        tint = np.abs(rng.standard_normal(COLOUR_DIM))
        colour = (tint / np.linalg.norm(tint)).tolist()
        points.append(
            Point(
                index_layout.point_id(product.id, product.id, (0, 0, 400, 500), info.version),
                {"cnn": vector, "cnn_l1": vector, "colour": colour},
                {
                    **index_layout.product_payload(product),
                    "image_id": product.id,
                    "bbox": [0.0, 0.0, 400.0, 500.0],
                    "model_version": info.version,
                    "source": source.name,
                    "garment": garment.name if garment else None,
                    "garment_parent": garment.parent if garment else None,
                },
            )
        )
    for start in range(0, len(points), 1000):
        index.upsert(collection, points[start : start + 1000])
    index.optimize(collection)
    index.optimize(indexing.ensure_text_collection(index))
    return settings, catalog, index


@benchmark(
    "words",
    f"A text query (words alone) on the gateway's pipeline in process, {PRODUCTS:,} generated "
    "products: core-ms per query (process CPU time, all threads) and wall ms (p50) by the text "
    "path, the pictures path (the shipped model's word bridge) and both fused (the default); "
    "and the sentence model alone.",
)
def words_cost() -> Figures:
    from lab.wiring import gateway_pipeline
    from services.gateway.schemas import RecommendParams
    from shared.download import make_client
    from shared.words import sentence_encoder

    figures: Figures = {"products": PRODUCTS}
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-words-") as tmp:
        settings, catalog, index = _shop(Path(tmp))
        try:
            encoder = sentence_encoder()
            figures.update(_cost("sentence_model", lambda t: encoder.encode([t])))
            with make_client(timeout_s=5.0) as http:
                for path in ("text", "pictures", "both"):
                    gateway = settings.gateway.model_copy(update={"words_paths": path})
                    chosen = settings.model_copy(update={"gateway": gateway})
                    with gateway_pipeline(chosen, catalog, index, http) as pipeline:
                        figures.update(
                            _cost(
                                f"query_{path}",
                                lambda t, p=pipeline: p.from_text(RecommendParams(text=t, k=12)),
                            )
                        )
        finally:
            index.close()
            catalog.dispose()
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the cores
    figures["machine"] = f"{machine()['cores']} cores, {machine()['cpu']}"
    return figures


def _cost(name: str, run: Any) -> Figures:
    """:func:`cost_per_call` of ``run`` over :data:`QUERIES` (:data:`RUNS` calls after two
    warming up), each query asked once unseen (the caches of repeated words are not what a
    new query meets)."""
    warm = [lambda q=query: run(q + " warm") for query in QUERIES[:2]]
    asked = [lambda i=i: run(f"{QUERIES[i % len(QUERIES)]} {i}") for i in range(RUNS)]
    return cost_per_call(name, warm + asked, warm=len(warm))
