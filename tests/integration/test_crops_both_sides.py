"""A catalog photo and the same photo as a shopper's query are cut into the same crops with
the same garment masks, colour descriptors and named colours: ingest (download, decode,
detect, crop) and the gateway's crop step both go through :func:`shared.crops.garment_crops`,
with the catalog framed whole and framed to its garments (``crops.detect``), and with the
garment alone embedded (``crops.remove_background``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.detector.client import make_detector
from services.gateway.service import RecommendPipeline, Timings
from services.ingest.pipeline import IngestReport, IngestRuntime
from shared import index_layout
from shared.crops import CUTOUT_FILL
from shared.db import Catalog
from shared.db.models import GarmentCrop as CropRow
from shared.index_layout import COLOUR_VECTOR
from shared.settings import Settings
from shared.vectors import EdgeIndex
from tests.ingest_support import demo_items, demo_source, link_models, shared_models_dir

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(6, seed=5), port=0) as running:
        yield running


@pytest.mark.parametrize(
    ("detect", "cutout"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["whole", "detected", "whole-cutout", "detected-cutout"],
)
def test_a_catalog_photo_and_the_same_photo_as_a_query_get_the_same_crops_and_colour(
    sqlite_catalog: Catalog,
    settings: Settings,
    shop: DemoShop,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    detect: bool,
    cutout: bool,
) -> None:
    catalog = sqlite_catalog
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    settings = settings.model_copy(
        update={
            "crops": settings.crops.model_copy(
                update={"detect": detect, "remove_background": cutout}
            )
        }
    )
    runtime = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(tmp_path / "index"))
    runtime.owns_index = True
    ingest = runtime.pipeline
    # The gateway's crop step needs neither the embedder nor the recommender.
    gateway = RecommendPipeline(
        settings,
        catalog,
        make_detector(settings),
        None,
        None,
        http=httpx.Client(),  # type: ignore[arg-type]
    )
    try:
        source = demo_source(catalog, shop.url)
        ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
        # The product shots (front and back views on a plain background); a detail view is no
        # garment to the gateway, or a street-like photo cut to its garments.
        claims = [c for c in catalog.images_as_claims(ids) if "/detail-" not in c.url]
        tight = cut = 0
        for claim, product, policy in ingest._jobs(claims, IngestReport()):
            # Ingest's own steps: the download and decoding, then its crops.
            decoded = ingest._fetch((claim, product, policy))
            assert not isinstance(decoded, tuple), decoded
            catalog_crops = [crop.garment for crop in ingest._crops([decoded])]
            query_crops = gateway.crops(httpx.get(claim.url, trust_env=False).content, Timings())
            assert catalog_crops and len(catalog_crops) == len(query_crops)
            for ours, theirs in zip(catalog_crops, query_crops, strict=True):
                assert theirs.picture.size == ours.picture.size
                assert theirs.picture.tobytes() == ours.picture.tobytes()
                assert theirs.colour.tobytes() == ours.colour.tobytes()
                assert theirs.colour.dtype == np.float32
                # The garment's own pixels and its named colour, the same on both sides.
                assert theirs.inner == ours.inner
                assert theirs.mask.fallback == ours.mask.fallback
                assert theirs.mask.pixels.tobytes() == ours.mask.pixels.tobytes()
                assert (theirs.colour_name, theirs.colour_p) == (ours.colour_name, ours.colour_p)
                assert ours.colour_name is not None
                tight += theirs.picture.size != decoded.image.size
                # The garment alone: white wherever its mask is not (a fallback stays whole).
                garment = ours.mask.resized(ours.picture.size)
                outside = np.asarray(ours.picture)[~garment]
                if cutout and not ours.mask.fallback:
                    assert outside.size and np.all(outside == CUTOUT_FILL)
                    cut += 1
        if detect:
            assert tight, "the detector should have framed some product shots to their garments"
        else:
            assert tight == 0, "with crops.detect off every product shot is framed whole"
        if cutout:
            assert cut, "some product shots should have lost their background"

        # What ingest indexes (box and colour) is what the gateway searches with.
        report = ingest.process(ids)
        assert sorted(report.done) == sorted(ids), report
        with catalog.reading() as session:
            recorded = list(session.query(CropRow).order_by(CropRow.id))
        indexed: dict[int, list[tuple[list[float], list[float], str]]] = {}
        for row in recorded:
            [point] = runtime.index.retrieve(index_layout.ALIAS, [row.point_id], with_vectors=True)
            # The vectors say how their crops were made (another index than the default's).
            assert point.payload["model_version"].endswith("+cutout") == cutout
            colour = (point.vectors or {})[COLOUR_VECTOR]
            named = point.payload["colour_name"]
            indexed.setdefault(row.image_id, []).append((point.payload["bbox"], colour, named))
        assert len(indexed) == len(ids)
        for claim in claims:
            query_crops = gateway.crops(httpx.get(claim.url, trust_env=False).content, Timings())
            assert len(indexed[claim.id]) == len(query_crops)
            for (box, colour, named), crop in zip(indexed[claim.id], query_crops, strict=True):
                assert named == crop.colour_name
                if detect:  # framed whole, the query's box spans what the detector found
                    assert box == pytest.approx(crop.box, abs=0.01)
                # The index keeps colour vectors unit-normalised (cosine): equal up to that.
                assert colour == pytest.approx(crop.colour.tolist(), abs=1e-6)
    finally:
        gateway.http.close()
        runtime.close()
