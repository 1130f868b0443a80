"""Product text in the index beside the image points: ingest writes one text point per product
(dense sentence vector and sparse lexical vector), upkeep hides and deletes it with the
product's image points, and both engines search it alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.ingest import indexing
from services.ingest.pipeline import IngestRuntime
from services.ingest.sweeper import Sweeper
from shared import index_layout
from shared.db import Catalog
from shared.db.models import utcnow
from shared.settings import Settings
from shared.taxonomy import garment_class
from shared.vectors import ClientIndex, EdgeIndex, PayloadFilter, Point, VectorIndex
from shared.words import TEXT_MODEL, SentenceEncoder, lexical_vector, sentence_encoder
from tests.ingest_support import demo_items, demo_source, link_models, shared_models_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

TEXTS = index_layout.text_collection_name(TEXT_MODEL)


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(6, seed=3), port=0) as running:
        yield running


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_models_dir(tmp_path_factory)


@pytest.fixture
def runtime(
    catalog: Catalog, settings: Settings, models_dir: Path, tmp_path: Path
) -> Iterator[IngestRuntime]:
    link_models(settings.data_dir, models_dir)
    ingest = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(tmp_path / "index"))
    ingest.owns_index = True
    yield ingest
    ingest.close()


def test_ingest_writes_one_text_point_per_product(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    items = demo_items(shop, 4)
    catalog.upsert_products(source.id, items)
    runtime.pipeline.process(catalog.pending_image_ids())
    products = catalog.list_products()
    assert index.count(TEXTS) == len(products) == 4
    for product in products:
        point_id = index_layout.text_point_id(product.id, TEXT_MODEL)
        [point] = index.retrieve(TEXTS, [point_id], with_vectors=True)
        garment = garment_class(product.category)
        assert garment is not None
        assert point.payload["product_id"] == product.id
        assert point.payload["active"] == 1
        assert point.payload["source"] == "demo-shop"
        assert point.payload["garment"] == garment.name
        assert point.payload["garment_parent"] == garment.parent
        assert point.payload["title"] == product.title
        assert point.payload["image_url"] in {image.url for image in product.images}
        assert product.title in point.payload["text"]
        # The title's own words find the product first, lexically and by meaning.
        [lexical] = index.search(
            TEXTS, index_layout.TEXT_SPARSE, lexical_vector(product.title, query=True), limit=1
        )
        [dense] = index.search(
            TEXTS,
            index_layout.TEXT_DENSE,
            sentence_encoder().encode([point.payload["text"]])[0].tolist(),
            limit=1,
        )
        assert lexical.payload["product_id"] == dense.payload["product_id"] == product.id

    # Deactivated with its image points, active again when it comes back, deleted with them.
    gone = products[0]
    catalog.mark_unseen(source.id, seen_before=utcnow(), max_missed_runs=1)
    catalog.upsert_products(source.id, items[1:])
    indexing.sync_products(index, catalog, [gone.id])
    mine = PayloadFilter(equals={"product_id": gone.id, "active": 1})
    assert index.count(TEXTS, mine) == 0 == index.count(index_layout.ALIAS, mine)
    catalog.upsert_products(source.id, items[:1])
    indexing.sync_products(index, catalog, [gone.id])
    assert index.count(TEXTS, mine) == 1
    indexing.remove_products(index, [gone.id])
    assert index.count(TEXTS, PayloadFilter(equals={"product_id": gone.id})) == 0
    assert index.count(TEXTS) == 3


def test_disabled_text_indexing_writes_no_text_points(
    catalog: Catalog, settings: Settings, models_dir: Path, tmp_path: Path, shop: DemoShop
) -> None:
    link_models(settings.data_dir, models_dir)
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"index_text": False})}
    )
    ingest = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(tmp_path / "i"))
    ingest.owns_index = True
    try:
        source = demo_source(catalog, shop.url)
        catalog.upsert_products(source.id, demo_items(shop, 2))
        ingest.pipeline.process(catalog.pending_image_ids())
        assert index_layout.text_collections(ingest.index) == []
    finally:
        ingest.close()


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_both_engines_score_sparse_vectors_with_idf(engine: str, tmp_path: Path) -> None:
    index: VectorIndex = (
        EdgeIndex(tmp_path / "edge")
        if engine == "edge"
        else ClientIndex(QdrantClient(location=":memory:"))
    )
    try:
        index.ensure_collection(index_layout.text_collection_spec(TEXTS, 3))
        titles = ["navy cotton tee", "red cotton dress", "black leather boots"]
        index.upsert(
            TEXTS,
            [
                Point(
                    str(uuid.uuid4()),
                    {
                        index_layout.TEXT_DENSE: [1.0, float(i), 0.0],
                        index_layout.TEXT_SPARSE: lexical_vector(t, query=False),
                    },
                    {"title": t, "active": 1},
                )
                for i, t in enumerate(titles)
            ],
        )
        hits = index.search(
            TEXTS, index_layout.TEXT_SPARSE, lexical_vector("cotton tee", query=True), limit=3
        )
        # "cotton" is in two titles, "tee" in one: IDF puts the tee first.
        assert [h.payload["title"] for h in hits][:2] == titles[:2]
        assert hits[0].score > hits[1].score > 0
    finally:
        index.close()


def test_the_sweeper_backfills_products_indexed_without_text(
    catalog: Catalog, settings: Settings, models_dir: Path, tmp_path: Path, shop: DemoShop
) -> None:
    link_models(settings.data_dir, models_dir)
    off = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"index_text": False})}
    )
    ingest = IngestRuntime.build(off, catalog=catalog, index=EdgeIndex(tmp_path / "i"))
    ingest.owns_index = True
    try:
        source = demo_source(catalog, shop.url)
        catalog.upsert_products(source.id, demo_items(shop, 3))
        ingest.pipeline.process(catalog.pending_image_ids())
        assert index_layout.text_collections(ingest.index) == []
        sweeper = Sweeper(catalog, settings, index=ingest.index)
        assert sweeper.sweep().texts_backfilled == 3
        assert ingest.index.count(TEXTS) == 3
        assert sweeper.sweep().texts_backfilled == 0  # done: the walk does not start again
        written, more = indexing.backfill_texts(ingest.index, catalog)
        assert (written, more) == (0, None)  # every product has its point
    finally:
        ingest.close()


def test_shopper_words_meet_catalog_words() -> None:
    from shared.words import expand_query, read_intent

    assert expand_query("black hoodie") == "black hoodie sweatshirt hooded"
    assert expand_query("Navy Tee") == "Navy Tee blue t-shirt tshirt"
    assert expand_query("red dress") == "red dress"
    tee = lexical_vector("navy tee", query=True)
    title = lexical_vector("Koru Men Blue Cotton T-Shirt", query=False)
    assert set(tee.indices) & set(title.indices)
    assert read_intent("NAVY   t shirts").as_dict() == {
        "garment": "t-shirt",
        "garment_parent": "top",
        "colour": "blue",
    }


def test_the_same_words_are_embedded_once(runtime: IngestRuntime, shop: DemoShop) -> None:
    """A photo refined by words asks once per garment with the same words: the sentence model
    runs once for them, and again only for other words."""
    from services.recommender.schemas import TextQuery
    from services.recommender.service import Recommender

    class Counting(SentenceEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []

        def encode(self, texts: list[str]) -> np.ndarray:
            self.texts += texts
            return super().encode(texts)

    catalog = runtime.catalog
    catalog.upsert_products(demo_source(catalog, shop.url).id, demo_items(shop, 4))
    runtime.pipeline.process(catalog.pending_image_ids())
    encoder = Counting()
    recommender = Recommender(runtime.index, encoder=encoder)
    first = recommender.search_text(TextQuery(text="blue shirt", k=3, garments=["top"]))
    again = recommender.search_text(TextQuery(text="blue shirt", k=3, garments=["bottom"]))
    assert first.hits and len(encoder.texts) == 1 and again.intent == first.intent
    recommender.search_text(TextQuery(text="red shoes", k=3))
    assert len(encoder.texts) == 2


def test_a_new_title_is_found_by_its_words_without_reingest(
    runtime: IngestRuntime, shop: DemoShop
) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    [item] = demo_items(shop, 1)
    catalog.upsert_products(source.id, [item])
    runtime.pipeline.process(catalog.pending_image_ids())
    [product] = catalog.list_products()
    point_id = index_layout.text_point_id(product.id, TEXT_MODEL)
    [before] = index.retrieve(TEXTS, [point_id], with_vectors=True)

    # The shop renames the product: the crawl writes it, upkeep syncs it; no image is redone.
    catalog.upsert_products(source.id, [item.model_copy(update={"title": "Zanzibar Raincoat"})])
    assert catalog.pending_image_ids() == []
    indexing.sync_products(index, catalog, [product.id])
    [after] = index.retrieve(TEXTS, [point_id], with_vectors=True)
    assert after.payload["title"] == "Zanzibar Raincoat" and "Zanzibar" in after.payload["text"]
    assert after.payload["garment"] == before.payload["garment"]
    assert after.vectors != before.vectors
    [hit] = index.search(
        TEXTS, index_layout.TEXT_SPARSE, lexical_vector("zanzibar", query=True), limit=1
    )
    assert hit.payload["product_id"] == product.id
    # Unchanged words are not embedded again.
    assert indexing.refresh_texts(index, catalog.list_products()) == 0
