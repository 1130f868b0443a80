"""``lookalike eval-text``: words alone on ``/recommend``, end to end, on a labelled catalog
folder (``labels.csv`` + images) indexed as a shop.

1. the catalog is indexed once into a kept folder (:mod:`lab.evaluate.shop`): one half is the
   shop, the other half what the word bridge learns from (:mod:`lab.embedder.bridge`; the
   bridge is learnt on that half here, never on the shop's products);
2. queries are built from the shop's labels: one per (colour, article type) pair with at least
   ``min_products`` products, ``"<colour> <type>"`` in the catalog's words and, where the
   shopper says it otherwise (:data:`SHOPPER_TYPES`, :data:`SHOPPER_COLOURS`), in a shopper's
   words;
3. each is answered by the gateway's pipeline (:meth:`RecommendPipeline.from_text`, k=10) by
   each path (``gateway.words_paths``: the products' text, the pictures, both fused) and
   scored: P@10 of the same article type, and of the same type and colour; with the CPU time
   per query.

Variants: ``published`` (titles and categories as the shop publishes them) and ``hidden``
(titles ``Item <id>``, no category, labels or attributes, garment classes from the pictures
alone: what words can do when the shop's own words say nothing).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.evaluate.records import CatalogItem
from lab.evaluate.shop import IndexedShop, indexed_shop, only, read_pairs
from lab.wiring import gateway_pipeline
from services.gateway.schemas import RecommendParams
from shared.settings import Settings

__all__ = ["PATHS", "SHOPPER_COLOURS", "SHOPPER_TYPES", "queries", "run"]

PATHS = ("text", "pictures", "both")
VARIANTS = {"published": "shop", "hidden": "hidden"}
"""Each variant and the part of the indexed shop it searches."""

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


def learn_bridge(shop: IndexedShop, out: Path, progress: Progress) -> dict[str, Any]:
    """The word bridge learnt on the indexed shop's ``bridge`` half, saved in ``out``."""
    from lab.embedder.bridge import train
    from shared.words import sentence_encoder

    pairs = read_pairs(shop, ["bridge"])
    bridge, figures = train(pairs, sentence_encoder(), progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    bridge.save(out, {"trained_on": "the bridge half of the indexed shop", **figures})
    progress(f"bridge: {figures}")
    return figures


def _score(
    shop: IndexedShop,
    settings: Settings,
    part: str,
    asked: Sequence[tuple[str, str, str, str]],
) -> dict[str, Any]:
    from shared.download import make_client

    truth = shop.parts[part]
    figures: dict[str, Any] = {}
    with (
        make_client(timeout_s=5.0) as http,
        gateway_pipeline(settings, shop.catalog, shop.index, http) as pipeline,
    ):
        for words in ("catalog", "shopper"):
            same_type, same_both, cpu_ms, answered = [], [], [], Counter[str]()
            for catalog_words, shopper, kind, colour in asked:
                text = catalog_words if words == "catalog" else shopper
                if not text:
                    continue
                began = time.process_time()
                response = pipeline.from_text(RecommendParams(text=text, k=10))
                cpu_ms.append((time.process_time() - began) * 1000)
                [group] = response.groups
                answered[group.answered_by] += 1
                hits = [truth[r.id] for r in group.recommendations[:10] if r.id in truth]
                same_type.append(sum(h.article_type == kind for h in hits) / 10)
                same_both.append(
                    sum(h.article_type == kind and h.colour == colour for h in hits) / 10
                )
            figures[words] = {
                "queries": len(same_type),
                "p10_type": round(statistics.fmean(same_type), 3) if same_type else None,
                "p10_type_colour": round(statistics.fmean(same_both), 3) if same_both else None,
                "cpu_ms_p50": round(statistics.median(cpu_ms), 1) if cpu_ms else None,
                "answered_by": dict(answered),
            }
    return figures


def run(
    folder: Path,
    data_dir: Path,
    settings: Settings,
    *,
    min_products: int = 10,
    variants: Sequence[str] = tuple(VARIANTS),
    paths: Sequence[str] = PATHS,
    grid: Mapping[str, Sequence[float]] | None = None,
    bridge: Path | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """Every path's figures per variant and wording (see the module's docstring). ``grid``:
    values of ``words_pictures_weight`` / ``words_colour_weight`` to score besides the
    settings' (the fused and pictures paths); ``bridge``: a bridge folder to use instead of
    learning one on the bridge half."""
    out: dict[str, Any] = {"catalog": str(folder), "min_products": min_products, "k": 10}
    with indexed_shop(folder, data_dir, settings, progress=progress) as shop:
        if bridge is None:
            bridge = data_dir / "bridge"
            out["bridge"] = learn_bridge(shop, bridge, progress)
        local = shop.settings.model_copy(
            update={"embedder": shop.settings.embedder.model_copy(update={"bridge": bridge})}
        )
        items = [item for item in shop.parts["shop"].values() if item.article_type]
        asked = queries(items, min_products)
        out.update(products=len(items), queries=len(asked))
        progress(f"{len(items)} products in the shop, {len(asked)} (colour, type) queries")
        for variant in variants:
            only(shop, VARIANTS[variant])
            figures: dict[str, Any] = {}
            for path in paths:
                for name, overrides in _settings_grid(path, local, grid or {}):
                    gateway = local.gateway.model_copy(update={"words_paths": path, **overrides})
                    chosen = local.model_copy(update={"gateway": gateway})
                    figures[name] = _score(shop, chosen, VARIANTS[variant], asked)
                    progress(f"{variant} / {name}: {figures[name]}")
            out[variant] = figures
        only(shop, "shop")
    return out


def _settings_grid(
    path: str, settings: Settings, grid: Mapping[str, Sequence[float]]
) -> list[tuple[str, dict[str, float]]]:
    """The path's own settings, then each grid value that applies to it."""
    runs: list[tuple[str, dict[str, float]]] = [(path, {})]
    applies = {"words_colour_weight": ("pictures", "both"), "words_pictures_weight": ("both",)}
    for field, values in grid.items():
        if path not in applies.get(field, ()):
            continue
        for value in values:
            if value != getattr(settings.gateway, field):
                runs.append((f"{path} {field}={value}", {field: value}))
    return runs
