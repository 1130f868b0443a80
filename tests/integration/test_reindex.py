"""``reindex``: a new model fills a new collection while searches keep using the old one; the
alias switches when it is done, and new ingest follows the new model."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.embedder.provider import ModelSpec
from services.gateway.app import create_app
from services.ingest import reindex as reindexing
from services.ingest.pipeline import IngestRuntime
from services.ingest.reindex import ReindexJobs
from services.ingest.sweeper import Sweeper
from shared import index_layout
from shared.db import Catalog
from shared.db.models import ImageState
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.vectors import EdgeIndex, PayloadFilter
from shared.words import TEXT_MODEL
from tests.gateway_support import NO_SERVICE, gateway_settings
from tests.ingest_support import (
    LOOKALIKE,
    demo_items,
    demo_source,
    link_models,
    service_env,
    shared_models_dir,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

NEW_MODEL = ModelSpec("efficientnet_lite0", weights="random", runtime="torch", device="cpu")
NEW_VERSION = "efficientnet_lite0-random"
NEW_CUTOUT_BASE = "efficientnet_lite0-imagenet"


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(5, seed=11), port=0) as running:
        yield running


@pytest.fixture
def data_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    return settings


def _ingest(settings: Settings, shop: DemoShop, count: int) -> IngestRuntime:
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    assert settings.qdrant_path is not None
    runtime = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(settings.qdrant_path))
    runtime.owns_catalog = runtime.owns_index = True
    source = demo_source(catalog, shop.url)
    ids = catalog.upsert_products(source.id, demo_items(shop, count)).new_image_ids
    assert sorted(runtime.pipeline.process(ids).done) == sorted(ids)
    return runtime


def test_reindex_switches_the_alias_with_no_gap_in_search(
    data_settings: Settings, shop: DemoShop
) -> None:
    # From frozen Lite0 to a random-weight Lite0: one dimension, so one probe vector searches
    # the alias before, during and after the switch.
    lite0 = data_settings.embedder.model_copy(update={"model": "efficientnet_lite0"})
    runtime = _ingest(data_settings.model_copy(update={"embedder": lite0}), shop, 4)
    try:
        catalog, index, pipeline = runtime.catalog, runtime.index, runtime.pipeline
        old = index.resolve(index_layout.ALIAS)
        n_points = index.count(old)
        probe = index.search(old, "cnn", [1.0] * 1280, limit=1, with_vectors=True)[0]
        assert probe.vectors is not None
        active = PayloadFilter(equals={"active": 1})

        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(reindexing.reindex, pipeline, NEW_MODEL, progress=False, settle_s=0.5)
            searches = 0
            while not job.done():  # every search during the reindex must answer
                hits = index.search(
                    index_layout.ALIAS, "cnn", probe.vectors["cnn"], limit=3, where=active
                )
                assert hits
                searches += 1
                time.sleep(0.01)
            report = job.result()

        new = index_layout.collection_name(NEW_VERSION)
        assert searches > 10
        assert (report.collection, report.previous, report.failed) == (new, old, 0)
        assert report.embedded == n_points
        assert index.resolve(index_layout.ALIAS) == new
        assert index.count(new) == index.count(old) == n_points  # the old one stays for rollback
        active_model = catalog.active_model_version("embedder")
        assert active_model is not None and active_model.name == NEW_VERSION
        version_id = active_model.id
        assert catalog.images_without_crops_of(version_id) == []
        [hit] = index.search(index_layout.ALIAS, "cnn", [1.0] * 1280, limit=1)
        assert hit.payload["model_version"] == NEW_VERSION

        # New images are embedded by the new model, into the live collection.
        source = catalog.list_sources()[0]
        more = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
        pipeline.process(more)
        assert index.count(new) == n_points + len(more)
        assert index.count(old) == n_points

        # Running it again finds nothing left to do.
        again = reindexing.reindex(pipeline, NEW_MODEL, progress=False, settle_s=0)
        assert again.embedded == 0

        # A worker that was slow to switch embeds an image with the old model after the
        # reindex finished: the sweeper sends it back through ingest.
        late = more[0]
        pipeline.reembed([late], pipeline.models.load(ModelSpec()), old)
        assert catalog.images_without_crops_of(version_id) == [late]
        report = Sweeper(catalog, data_settings, index=index).sweep()
        assert report.stragglers == 1 and report.queue_depth == 0
        assert catalog.get_image(late).state is ImageState.PENDING
        assert pipeline.process([late]).done == [late]
        assert catalog.images_without_crops_of(version_id) == []
    finally:
        runtime.close()


def test_background_removal_is_an_index_of_its_own(data_settings: Settings, shop: DemoShop) -> None:
    """``crops.remove_background`` changes every vector: the model version names it
    (``+cutout``), a worker whose setting differs from the index's is refused (its images stay
    pending), and ``reindex`` with the new setting switches the index to a collection of
    its own."""
    lite0 = data_settings.embedder.model_copy(update={"model": "efficientnet_lite0"})
    kept = data_settings.model_copy(update={"embedder": lite0})
    alone = kept.model_copy(
        update={"crops": kept.crops.model_copy(update={"remove_background": True})}
    )
    runtime = _ingest(kept, shop, 2)
    cutting = IngestRuntime.build(alone, catalog=runtime.catalog, index=runtime.index)
    try:
        catalog, index = runtime.catalog, runtime.index
        old = index.resolve(index_layout.ALIAS)
        source = catalog.list_sources()[0]
        more = catalog.upsert_products(source.id, demo_items(shop, 3)).new_image_ids
        assert more
        with pytest.raises(ConfigurationError, match="LOOKALIKE_CROPS__REMOVE_BACKGROUND"):
            cutting.pipeline.process(more)
        assert {catalog.get_image(i).state for i in more} == {ImageState.PENDING}

        spec, _ = cutting.pipeline.models.active_spec()
        report = reindexing.reindex(cutting.pipeline, spec, progress=False, settle_s=0)
        version = f"{NEW_CUTOUT_BASE}+cutout"
        assert report.model_version == version and report.failed == 0
        assert index.resolve(index_layout.ALIAS) == index_layout.collection_name(version) != old
        active = catalog.active_model_version("embedder")
        assert active is not None and active.name == version
        assert cutting.pipeline.process(more).done == sorted(more)
        [hit] = index.search(index_layout.ALIAS, "cnn", [1.0] * 1280, limit=1)
        assert hit.payload["model_version"] == version
        # Now the index is cut out, a worker that keeps the background is refused in turn.
        later = catalog.upsert_products(source.id, demo_items(shop, 4)).new_image_ids
        with pytest.raises(ConfigurationError, match=r"crops\.remove_background on"):
            runtime.pipeline.process(later)
    finally:
        cutting.close()
        runtime.close()


def test_reindex_command(data_settings: Settings, shop: DemoShop) -> None:
    runtime = _ingest(data_settings, shop, 2)
    n_points = runtime.index.count(index_layout.ALIAS)
    runtime.close()  # the command opens the embedded index itself

    def reindex(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [LOOKALIKE, "reindex", "--settle", "0", *args],
            env=service_env(LOOKALIKE_DATA_DIR=str(data_settings.data_dir)),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return result

    new_model = ["--model", "efficientnet_lite0", "--weights", "random", "--runtime", "torch"]
    result = reindex(*new_model, "--drop-old")
    report = json.loads(result.stdout)
    assert report["model_version"] == NEW_VERSION
    assert report["embedded"] == n_points
    assert "reindex: 100%" in result.stderr  # the progress bar
    # The active model again: nothing to do, unless --all asks to embed everything anew.
    assert json.loads(reindex("--no-progress").stdout)["embedded"] == 0
    assert json.loads(reindex("--no-progress", "--all").stdout)["embedded"] == n_points
    assert data_settings.qdrant_path is not None
    index = EdgeIndex(data_settings.qdrant_path)
    try:
        assert index.resolve(index_layout.ALIAS) == index_layout.collection_name(NEW_VERSION)
        assert index_layout.catalog_collections(index) == [
            index_layout.collection_name(NEW_VERSION)
        ]  # --drop-old; the product-text collection does not depend on the image model
        assert index_layout.text_collections(index) == [
            index_layout.text_collection_name(TEXT_MODEL)
        ]
        assert index.count(index_layout.ALIAS) == n_points
    finally:
        index.close()


def _poll(client: TestClient, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.get("/admin/reindex")
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] != "running" or time.monotonic() > deadline:
            return answer.json()
        time.sleep(0.2)


def test_the_process_that_owns_the_index_reindexes_it(
    data_settings: Settings, shop: DemoShop
) -> None:
    """``lookalike run`` installs its ingest pipeline's :class:`ReindexJobs` in its gateway:
    ``POST /admin/reindex`` starts one in the background, a second waits its turn (409), and
    ``GET /admin/reindex`` follows it to the switch."""
    runtime = _ingest(data_settings, shop, 2)
    n_points = runtime.index.count(index_layout.ALIAS)
    gateway = data_settings.model_copy(
        update={"detector_url": NO_SERVICE, "embedder_url": NO_SERVICE}
    )
    app = create_app(gateway, catalog=runtime.catalog, index=runtime.index)
    app.state.reindex = ReindexJobs(runtime.pipeline)
    body = {
        "model": "efficientnet_lite0",
        "weights": "random",
        "runtime": "torch",
        "device": "cpu",
        "settle_s": 1.0,
    }
    try:
        with TestClient(app, client=("127.0.0.1", 50000)) as local:
            assert local.get("/admin/reindex").status_code == 404
            started = local.post("/admin/reindex", json=body)
            assert started.status_code == 202, started.text
            assert started.json()["state"] == "running"
            again = local.post("/admin/reindex", json=body)
            assert (again.status_code, again.json()["error"]) == (409, "reindex_running")
            report = _poll(local)
            with TestClient(app) as remote:  # not this machine, and no API key is set
                refused = remote.post("/admin/reindex", json=body)
                assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        live = runtime.index.resolve(index_layout.ALIAS)
    finally:
        runtime.close()
    assert report["state"] == "done", report
    assert report["phase"] == "done" and report["error"] is None
    assert report["collection"] == live == index_layout.collection_name(NEW_VERSION)
    assert report["embedded"] == report["total"] == n_points


def test_a_gateway_without_ingest_cannot_reindex(tmp_path: Path) -> None:
    """A standalone gateway (no ingest in its process) says why it cannot; with an API key,
    the key is needed even from this machine."""
    settings = gateway_settings(tmp_path / "data").model_copy(update={"api_key": "s3cret"})
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        assert client.post("/admin/reindex", json={}).status_code == 401
        answer = client.post("/admin/reindex", json={}, headers={"X-API-Key": "s3cret"})
        assert (answer.status_code, answer.json()["error"]) == (409, "cannot_reindex")
        assert "runs no ingest" in answer.json()["detail"]
        progress = client.get("/admin/reindex", headers={"X-API-Key": "s3cret"})
        assert progress.status_code == 409


def test_a_fresh_catalog_starts_with_the_configured_embedder(data_settings: Settings) -> None:
    """``embedder.model`` names the model a catalog without an active one starts with;
    once registered, the catalog's own choice wins over the setting."""
    from services.embedder.provider import ModelProvider

    chosen = data_settings.model_copy(
        update={"embedder": data_settings.embedder.model_copy(update={"model": "street-lite0"})}
    )
    catalog = Catalog.from_settings(chosen)
    catalog.migrate()
    provider = ModelProvider(catalog, chosen)
    try:
        assert provider.active_spec() == (ModelSpec(source="street-lite0"), False)
        model = provider.current()
        assert model.info.name == "street-lite0"
        active = catalog.active_model_version("embedder")
        assert active is not None and active.name == model.info.version
        later = ModelProvider(catalog, data_settings)  # the setting changed back: no effect
        assert later.active_spec() == (ModelSpec(source="street-lite0"), True)
    finally:
        provider.close()
        catalog.dispose()
