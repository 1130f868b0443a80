"""``lookalike eval-sessions``: "based on what you viewed" on ``/recommend``, end to end, on a
labelled catalog folder (``labels.csv`` + images) indexed as one shop.

1. a seeded sample of the catalog is indexed once into a kept folder (:func:`indexed_sample`),
   as a crawl's products are (download, crop, embed, index);
2. sessions are simulated from the labels (seeded): ``single`` (3-5 viewed products of one
   article type and colour), ``mixed`` (2-3 of one type and 2-3 of another), ``negative`` (a
   single session plus one "not for me" product of the same type in another colour);
3. each is answered by the gateway's pipeline (:meth:`RecommendPipeline.from_session`, k=10)
   and scored, excluding the viewed products: P@10 of the session's type and of its type and
   colour; for mixed sessions the share of the session's types present in the top 10 (and
   the share of sessions with all of them); for negative sessions how many of the top 10
   share the rejected product's type and colour, with and without the negative;
4. the baseline: each session's first viewed product alone, "more like this"
   (:meth:`RecommendPipeline.from_product`), scored the same way.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.evaluate.e2e import E2EConfig, _ingest, read_catalog, serve_folder
from lab.evaluate.records import CatalogItem
from lab.evaluate.shop import open_kept
from services.gateway.schemas import RecommendParams, RecommendResponse, ViewedProduct
from shared.db import Catalog
from shared.errors import ConfigurationError
from shared.settings import Settings

__all__ = ["IndexedSample", "Session", "indexed_sample", "run", "simulate"]

Progress = Callable[[str], None]
SOURCE = "shop"
K = 10
KINDS = ("single", "mixed", "negative")
MIN_PAIR = 8
"""Products a (type, colour) pair needs to seed sessions: 3-5 viewed and some left to find."""


@dataclass
class IndexedSample:
    """An opened indexed sample: its catalog, index and settings, and its products by the
    catalog's product id."""

    settings: Settings
    catalog: Catalog
    index: Any
    products: dict[int, CatalogItem]


@contextmanager
def indexed_sample(
    folder: Path,
    data_dir: Path,
    settings: Settings,
    *,
    max_products: int | None,
    seed: int = 0,
    progress: Progress = print,
) -> Iterator[IndexedSample]:
    """``data_dir`` opened, a seeded sample of ``max_products`` of the folder indexed into it
    first unless it holds it already (a folder made from another catalog, seed or size is
    refused)."""

    items = read_catalog(folder)
    if max_products is not None and max_products < len(items):
        rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
        items = sorted(rng.sample(items, max_products), key=lambda i: i.item_id)
    stamp = f"{folder.resolve()} seed={seed} products={len(items)}"
    local, catalog, index = open_kept(data_dir, settings, "indexed-sample.txt", stamp)
    try:
        if SOURCE not in {source.name for source in catalog.list_sources()}:
            config = E2EConfig(catalog=folder, street=folder)
            with serve_folder(folder) as base:
                figures = _ingest(
                    local, catalog, index, base, config, items, progress, source_name=SOURCE
                )
            progress(f"{SOURCE}: {figures}")
        by_external = {item.item_id: item for item in items}
        products = catalog.list_products(active=None, limit=len(items) + 10)
        yield IndexedSample(
            local, catalog, index, {p.id: by_external[p.external_id or ""] for p in products}
        )
    finally:
        index.close()
        catalog.dispose()


Pair = tuple[str, str]


@dataclass(frozen=True)
class Session:
    """A simulated session: the viewed products (their (type, colour) pairs), and the one
    rejected ("not for me"), if any."""

    kind: str
    viewed: tuple[int, ...]
    pairs: tuple[Pair, ...]
    not_for_me: int | None = None
    rejected: Pair | None = None


def simulate(products: dict[int, CatalogItem], per_kind: int, seed: int = 0) -> list[Session]:
    """``per_kind`` sessions of each kind of :data:`KINDS` (see the module's docstring), drawn
    seeded from the pairs of at least :data:`MIN_PAIR` products."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sessions, not a secret
    by_pair: dict[Pair, list[int]] = defaultdict(list)
    for pid, item in sorted(products.items()):
        if item.article_type and item.colour:
            by_pair[(item.article_type, item.colour)].append(pid)
    pairs = sorted(pair for pair, ids in by_pair.items() if len(ids) >= MIN_PAIR)
    if len(pairs) < 2:
        raise ConfigurationError(f"too few (type, colour) pairs of {MIN_PAIR} products")
    sessions = []
    for _ in range(per_kind):
        pair = rng.choice(pairs)
        viewed = tuple(rng.sample(by_pair[pair], rng.randint(3, 5)))
        sessions.append(Session("single", viewed, (pair,) * len(viewed)))
    for _ in range(per_kind):
        first = rng.choice(pairs)
        second = rng.choice([pair for pair in pairs if pair[0] != first[0]])
        a = rng.sample(by_pair[first], rng.randint(2, 3))
        b = rng.sample(by_pair[second], rng.randint(1, 2))
        sessions.append(Session("mixed", (*a, *b), (first,) * len(a) + (second,) * len(b)))
    rejectable = [
        (pair, other)
        for pair in pairs
        for other in pairs
        if other[0] == pair[0] and other[1] != pair[1]
    ]
    for _ in range(per_kind):
        pair, other = rng.choice(rejectable)
        viewed = tuple(rng.sample(by_pair[pair], rng.randint(3, 5)))
        rejected = rng.choice(by_pair[other])
        sessions.append(Session("negative", viewed, (pair,) * len(viewed), rejected, other))
    return sessions


def _top(ids: Sequence[int], session: Session) -> list[int]:
    """The first :data:`K` products that the session did not name."""
    named = {*session.viewed, session.not_for_me}
    return [pid for pid in ids if pid not in named][:K]


def _ids(response: RecommendResponse) -> list[int]:
    return [r.id for group in response.groups for r in group.recommendations]


def _figures(
    session: Session, top: Sequence[int], products: dict[int, CatalogItem]
) -> dict[str, float]:
    """P@10 of the session's types and (type, colour) pairs, and the best P@10 of the pairs
    that the shop's products left (the session's own excluded) allow; the share of its types
    in the top 10; for a rejection, how many of the top 10 are of the rejected type and
    colour, and the fewest that the shop's other products of the type allow."""
    items = [products[pid] for pid in top if pid in products]
    types = {pair[0] for pair in session.pairs}
    named = {*session.viewed, session.not_for_me}
    left = sum(
        (item.article_type, item.colour) in session.pairs
        for pid, item in products.items()
        if pid not in named
    )
    figures = {
        "p10_type_colour_best": min(K, left) / K,
        "p10_type": sum(i.article_type in types for i in items) / K,
        "p10_type_colour": sum((i.article_type, i.colour) in session.pairs for i in items) / K,
        "types_present": len(types & {i.article_type for i in items}) / len(types),
    }
    if session.rejected is not None:
        figures["rejected_in_top10"] = float(
            sum((i.article_type, i.colour) == session.rejected for i in items)
        )
        others = sum(
            item.article_type in types and (item.article_type, item.colour) != session.rejected
            for pid, item in products.items()
            if pid not in named
        )
        figures["rejected_fewest"] = float(max(0, K - others))
    return figures


def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = sorted({key for row in rows for key in row})
    return {key: round(statistics.fmean(row[key] for row in rows if key in row), 3) for key in keys}


def _score(
    sample: IndexedSample, settings: Settings, sessions: Sequence[Session], progress: Progress
) -> dict[str, Any]:
    from lab.wiring import gateway_pipeline
    from shared.download import make_client

    rows: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    cpu_ms: dict[str, list[float]] = defaultdict(list)
    with (
        make_client(timeout_s=5.0) as http,
        gateway_pipeline(settings, sample.catalog, sample.index, http) as pipeline,
    ):
        for n, session in enumerate(sessions, start=1):
            viewed = [ViewedProduct(product_id=pid) for pid in session.viewed]
            asked = [[session.not_for_me]] if session.not_for_me is not None else []
            for not_for_me in [[], *asked]:
                began = time.process_time()
                answer = pipeline.from_session(viewed, not_for_me, RecommendParams(k=K))
                cpu_ms["session"].append((time.process_time() - began) * 1000)
                name = "session" if not not_for_me else "session, not for me"
                top = _top(_ids(answer), session)
                rows[session.kind][name].append(_figures(session, top, sample.products))
            params = RecommendParams(k=min(100, K + len(session.viewed)))
            began = time.process_time()
            alone = pipeline.from_product(session.viewed[0], params)
            cpu_ms["more like this"].append((time.process_time() - began) * 1000)
            top = _top(_ids(alone), session)
            rows[session.kind]["more like this"].append(_figures(session, top, sample.products))
            if n % 50 == 0:
                progress(f"{n}/{len(sessions)} sessions")
    out: dict[str, Any] = {}
    for kind, by_path in rows.items():
        out[kind] = {path: {"sessions": len(r), **_mean(r)} for path, r in by_path.items()}
        if kind == "mixed":
            for path, r in by_path.items():
                every = sum(row["types_present"] == 1.0 for row in r) / len(r)
                out[kind][path]["all_types_present"] = round(every, 3)
    out["cpu_ms_p50"] = {path: round(statistics.median(v), 1) for path, v in cpu_ms.items()}
    return out


def run(
    folder: Path,
    data_dir: Path,
    settings: Settings,
    *,
    max_products: int | None,
    per_kind: int,
    seed: int = 0,
    progress: Progress = print,
) -> dict[str, Any]:
    """Sessions simulated on the indexed sample and their figures, with the baseline (see
    the module's docstring)."""
    out: dict[str, Any] = {"catalog": str(folder), "k": K, "seed": seed}
    with indexed_sample(
        folder, data_dir, settings, max_products=max_products, seed=seed, progress=progress
    ) as sample:
        sessions = simulate(sample.products, per_kind, seed)
        out.update(products=len(sample.products), sessions=len(sessions))
        progress(f"{len(sample.products)} products, {len(sessions)} sessions")
        out.update(_score(sample, sample.settings, sessions, progress))
    return out
