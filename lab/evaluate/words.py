"""``lookalike eval-text``: the text path of words on ``/recommend`` (issue 29), measured on a
labelled catalog folder (``labels.csv`` + images) served as a shop.

1. the catalog's rows become products (title, category = ``articleType``, labels, attributes)
   in a fresh SQLite catalog, and their text points are written as ingest writes them
   (:func:`services.ingest.indexing.index_texts`) into a fresh Qdrant Edge index; the images
   are not embedded (the text path does not read them);
2. queries are built from the labels: one per (colour, article type) pair with at least
   ``min_products`` products, ``"<colour> <type>"`` in the catalog's words and, where the
   shopper says it otherwise (:data:`SHOPPER_TYPES`, :data:`SHOPPER_COLOURS`), in a shopper's
   words;
3. each is answered by :meth:`Recommender.search_text` (k=10) and scored: P@10 of the same
   article type, and of the same type and colour; with the CPU time per query.

Variants: ``published`` (titles and categories as the shop publishes them) and ``hidden``
(titles ``Item <id>``, no category, labels or attributes: what words alone can do without
them, the floor the picture bridge of issue 29 is meant to lift).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.evaluate.e2e import _products, read_catalog
from lab.evaluate.records import CatalogItem
from shared.db import Catalog, SourceIn

__all__ = ["SHOPPER_COLOURS", "SHOPPER_TYPES", "queries", "run"]

SHOPPER_TYPES: dict[str, str] = {
    "Tshirts": "tee",
    "Casual Shoes": "sneakers",
    "Sports Shoes": "trainers",
    "Sweatshirts": "hoodie",
    "Sweaters": "jumper",
    "Trousers": "pants",
    "Track Pants": "joggers",
    "Handbags": "purse",
    "Flip Flops": "slides",
    "Jackets": "bomber",
    "Backpacks": "rucksack",
    "Heels": "pumps",
    "Shirts": "button down",
    "Jeans": "denim",
}
"""A shopper's word for an article type the catalog names otherwise."""

SHOPPER_COLOURS: dict[str, str] = {
    "Navy Blue": "navy",
    "Grey": "gray",
    "Maroon": "burgundy",
    "Beige": "tan",
    "Olive": "khaki",
}

Progress = Callable[[str], None]


def queries(items: Sequence[CatalogItem], min_products: int) -> list[tuple[str, str, str, str]]:
    """``(catalog words, shopper words or "", article type, colour)`` per common pair."""
    pairs = Counter((i.article_type, i.colour) for i in items if i.article_type and i.colour)
    out = []
    for (kind, colour), count in sorted(pairs.items()):
        if count < min_products:
            continue
        catalog_words = f"{colour} {kind}".lower()
        shopper = ""
        if kind in SHOPPER_TYPES or colour in SHOPPER_COLOURS:
            said_colour = SHOPPER_COLOURS.get(colour, colour.lower())
            shopper = f"{said_colour} {SHOPPER_TYPES.get(kind, kind.lower())}"
        out.append((catalog_words, shopper, kind, colour))
    return out


def _hidden(item: CatalogItem) -> CatalogItem:
    return CatalogItem(
        item_id=item.item_id,
        path=item.path,
        article_type="",
        sub_category="",
        colour="",
        title=f"Item {item.item_id}",
        attributes={},
    )


def _variant(
    items: Sequence[CatalogItem],
    folder: Path,
    asked: Sequence[tuple[str, str, str, str]],
    *,
    hide: bool,
    work: Path,
    progress: Progress,
) -> dict[str, Any]:
    from services.ingest import indexing
    from services.recommender.schemas import TextQuery
    from services.recommender.service import Recommender
    from shared.vectors import EdgeIndex
    from shared.words import sentence_encoder

    catalog = Catalog(f"sqlite:///{work / 'catalog.sqlite3'}")
    catalog.migrate()
    index = EdgeIndex(work / "index")
    try:
        base = "http://127.0.0.1:9"
        source = catalog.upsert_source(SourceIn(name="eval-text", base_url=base))
        published = [_hidden(i) for i in items] if hide else list(items)
        for start in range(0, len(published), 1000):
            catalog.upsert_products(
                source.id, _products(base, folder, published[start : start + 1000])
            )
        truth = {item.item_id: item for item in items}
        indexed = catalog.list_products(limit=len(items) + 10)
        encoder = sentence_encoder()
        started = time.perf_counter()
        for start in range(0, len(indexed), 64):
            indexing.index_texts(
                index,
                encoder,
                [
                    indexing.ProductText(p, source.name, None, None)
                    for p in indexed[start : start + 64]
                ],
            )
        index.optimize(indexing.ensure_text_collection(index))
        progress(f"text points: {len(indexed)} in {time.perf_counter() - started:.1f}s")
        by_id = {p.id: truth[p.external_id or ""] for p in indexed}
        recommender = Recommender(index, encoder=encoder)
        figures: dict[str, Any] = {}
        for words in ("catalog", "shopper"):
            same_type, same_both, cpu_ms = [], [], []
            for catalog_words, shopper, kind, colour in asked:
                text = catalog_words if words == "catalog" else shopper
                if not text:
                    continue
                began = time.process_time()
                result = recommender.search_text(TextQuery(text=text, k=10))
                cpu_ms.append((time.process_time() - began) * 1000)
                hits = [by_id[h.product_id] for h in result.hits]
                same_type.append(sum(h.article_type == kind for h in hits) / 10)
                same_both.append(
                    sum(h.article_type == kind and h.colour == colour for h in hits) / 10
                )
            figures[words] = {
                "queries": len(same_type),
                "p10_type": round(statistics.fmean(same_type), 3) if same_type else None,
                "p10_type_colour": round(statistics.fmean(same_both), 3) if same_both else None,
                "cpu_ms_p50": round(statistics.median(cpu_ms), 1) if cpu_ms else None,
            }
            progress(f"{'hidden' if hide else 'published'} / {words}: {figures[words]}")
        return figures
    finally:
        index.close()
        catalog.dispose()


def run(
    folder: Path,
    *,
    min_products: int = 10,
    variants: Sequence[str] = ("published", "hidden"),
    progress: Progress = print,
) -> dict[str, Any]:
    """The text path's figures per variant and wording (see the module's docstring)."""
    items = [item for item in read_catalog(folder) if item.article_type]
    asked = queries(items, min_products)
    progress(f"{len(items)} products, {len(asked)} (colour, type) queries")
    out: dict[str, Any] = {
        "catalog": str(folder),
        "products": len(items),
        "queries": len(asked),
        "min_products": min_products,
        "k": 10,
    }
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="eval-text-") as tmp:
            out[variant] = _variant(
                items, folder, asked, hide=variant == "hidden", work=Path(tmp), progress=progress
            )
    return out
