"""A labelled catalog folder indexed as shops, once, in a kept folder: the catalog (SQLite) and
the index (Qdrant Edge) that ``lookalike train-bridge`` learns from and ``lookalike eval-text``
answers from.

The folder's products are split, seeded, into two halves (:func:`halves`), each ingested as a
source of its own as a crawl's products are (download, crop, embed, index, and the text points
of their titles): ``bridge``, what the word bridge learns from, and ``shop``, the shop the words
are evaluated on. The shop's half is ingested a second time as ``hidden``: titles ``Item
<id>``, no category, labels or attributes (a shop whose words say nothing), so its garment
classes come from the pictures alone, as they would. A search sees one of them at a time
(:func:`only`: the others are disabled, as ``lookalike sources disable`` does).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.embedder.bridge import BridgePairs
from lab.evaluate.e2e import E2EConfig, _ingest, embedded_settings, read_catalog, serve_folder
from lab.evaluate.records import CatalogItem
from shared.db import Catalog
from shared.errors import ConfigurationError
from shared.index_layout import COLOUR_VECTOR, SHAPE_VECTOR, live_collection
from shared.settings import Settings

__all__ = ["IndexedShop", "halves", "indexed_shop", "only", "open_kept", "read_pairs"]

Progress = Callable[[str], None]
PARTS = ("shop", "bridge", "hidden")


def hidden(item: CatalogItem) -> CatalogItem:
    """The product as a shop whose words say nothing publishes it."""
    return CatalogItem(
        item_id=item.item_id,
        path=item.path,
        article_type="",
        sub_category="",
        colour="",
        title=f"Item {item.item_id}",
        attributes={},
    )


def halves(items: Sequence[CatalogItem], seed: int = 0) -> dict[str, list[CatalogItem]]:
    """The products split in two seeded halves, ``shop`` and ``bridge``, each by id, and the
    shop's half as ``hidden`` publishes it."""
    order = list(items)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible split, not a secret
    middle = len(order) // 2
    shop = sorted(order[middle:], key=lambda i: i.item_id)
    return {
        "shop": shop,
        "bridge": sorted(order[:middle], key=lambda i: i.item_id),
        "hidden": [hidden(item) for item in shop],
    }


def only(shop: IndexedShop, part: str) -> None:
    """Let searches see ``part``'s products alone: the other parts' sources disabled, and the
    index brought in line as the sweeper's upkeep does."""
    from services.ingest import indexing

    changed: list[int] = []
    for name in PARTS:
        if name == part:
            changed += shop.catalog.enable_source(name, max_missed_runs=10**6)[1]
        else:
            changed += shop.catalog.disable_source(name)[1]
    indexing.sync_products(shop.index, shop.catalog, changed)


@dataclass
class IndexedShop:
    """An opened indexed folder: its catalog, index and settings, and the products of each
    half by the catalog's product id."""

    settings: Settings
    catalog: Catalog
    index: Any
    parts: dict[str, dict[int, CatalogItem]]


def open_kept(
    data_dir: Path, settings: Settings, marker_name: str, stamp: str
) -> tuple[Settings, Catalog, Any]:
    """A kept evaluation folder's settings, catalog and index, opened; its ``marker_name`` file
    says what was indexed into it (``stamp``): a folder indexed from something else, or one
    holding a catalog without the marker, is refused."""
    from shared.vectors import open_index

    local = embedded_settings(settings, data_dir)
    marker = data_dir / marker_name
    fresh = not marker.exists()
    if fresh and (data_dir / "catalog.sqlite3").exists():
        raise ConfigurationError(f"{data_dir} holds another catalog; give a fresh folder")
    if not fresh and marker.read_text().strip() != stamp:
        raise ConfigurationError(f"{data_dir} was indexed from {marker.read_text().strip()}")
    local.ensure_dirs()
    catalog = Catalog.from_settings(local)
    catalog.migrate()
    index = open_index(None, local.qdrant_path)
    marker.write_text(stamp + "\n")
    return local, catalog, index


@contextmanager
def indexed_shop(
    folder: Path,
    data_dir: Path,
    settings: Settings,
    *,
    seed: int = 0,
    progress: Progress = print,
) -> Iterator[IndexedShop]:
    """``data_dir`` opened, indexing into it first the parts it does not hold yet (a folder
    made from another catalog or seed is refused)."""

    items = read_catalog(folder)
    parts = halves(items, seed)
    stamp = f"{folder.resolve()} seed={seed} products={len(items)}"
    local, catalog, index = open_kept(data_dir, settings, "indexed-shop.txt", stamp)
    try:
        have = {source.name for source in catalog.list_sources()}
        missing = [name for name in PARTS if name not in have]
        if missing:
            config = E2EConfig(catalog=folder, street=folder)
            with serve_folder(folder) as base:
                for name in missing:
                    # The hidden shop's pages have URLs of their own: the same server by
                    # another host name.
                    url = base.replace("127.0.0.1", "localhost") if name == "hidden" else base
                    figures = _ingest(
                        local, catalog, index, url, config, parts[name], progress, source_name=name
                    )
                    progress(f"{name}: {figures}")
        yield IndexedShop(local, catalog, index, _by_product_id(catalog, parts))
    finally:
        index.close()
        catalog.dispose()


def _by_product_id(
    catalog: Catalog, parts: Mapping[str, Sequence[CatalogItem]]
) -> dict[str, dict[int, CatalogItem]]:
    sources = {source.name: source.id for source in catalog.list_sources()}
    out: dict[str, dict[int, CatalogItem]] = {}
    for name, items in parts.items():
        truth = parts["shop"] if name == "hidden" else items  # the hidden shop's labels
        by_external = {item.item_id: item for item in truth}
        products = catalog.list_products(
            source_id=sources[name], active=None, limit=len(items) + 10
        )
        out[name] = {p.id: by_external[p.external_id or ""] for p in products}
    return out


def read_pairs(shop: IndexedShop, parts: Sequence[str]) -> BridgePairs:
    """Every product of ``shop``'s ``parts`` that has an indexed crop, with its largest crop's
    vectors (the index's live collection, made by the active model)."""
    collection = live_collection(shop.index)
    if collection is None:
        raise RuntimeError("the indexed shop holds no image collection")
    active = shop.catalog.active_model_version("embedder")
    if active is None:
        raise RuntimeError("the indexed shop has no active embedder model")
    products = {pid: item for part in parts for pid, item in shop.parts[part].items()}
    image_of: dict[int, int] = {}
    for product in shop.catalog.list_products(active=None, limit=10**6):
        if product.id in products:
            for image in product.images:
                image_of[image.id] = product.id
    best: dict[int, tuple[float, list[float], list[float]]] = {}
    ids = list(image_of)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        points = shop.catalog.crop_point_ids(chunk, active.name)
        for hit in shop.index.retrieve(collection, points, with_vectors=True):
            pid = int(hit.payload["product_id"])
            x0, y0, x1, y1 = hit.payload.get("bbox") or (0.0, 0.0, 1.0, 1.0)
            area = (x1 - x0) * (y1 - y0)
            vectors = hit.vectors or {}
            if pid not in best or area > best[pid][0]:
                best[pid] = (area, vectors[SHAPE_VECTOR], vectors[COLOUR_VECTOR])
    order = sorted(best)
    return BridgePairs(
        items=[products[pid] for pid in order],
        embeddings=np.array([best[pid][1] for pid in order], np.float32),
        colours=np.array([best[pid][2] for pid in order], np.float32),
        model_version=active.name,
    )
