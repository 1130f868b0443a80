"""A shop switched to a foundation model loaded from a local file: ``lookalike reindex
--model ViT-B-32 --weights FILE`` embeds the catalog into a new collection and switches the
alias; a photo is then answered end to end by it, and words embed into the same index with its
text tower. Random weights (nothing is downloaded here): the answers' quality is not the
question, that the pipeline runs on the model is."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from services.demo_shop.catalog import DemoCatalog, render_image
from services.demo_shop.server import DemoShop
from services.embedder.provider import ModelProvider
from services.gateway.app import create_app
from services.ingest.pipeline import IngestRuntime
from services.modellab.models.openclip import build_clip
from shared import index_layout
from shared.db import Catalog
from shared.settings import Settings
from shared.vectors import EdgeIndex
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
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(3, seed=5), port=0) as running:
        yield running


def test_reindex_switches_a_shop_to_a_clip_model_from_a_local_file(
    settings: Settings, shop: DemoShop, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    torch.manual_seed(0)
    weights = tmp_path / "vit-b-32.pt"
    state = build_clip("ViT-B-32", "random").text.model.state_dict()
    torch.save({key: value.half() for key, value in state.items()}, weights)

    # The shop starts on the offline default backbone.
    lite0 = settings.embedder.model_copy(update={"model": "efficientnet_lite0"})
    settings = settings.model_copy(update={"embedder": lite0})
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    assert settings.qdrant_path is not None
    runtime = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(settings.qdrant_path))
    runtime.owns_index = True
    source = demo_source(catalog, shop.url)
    ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
    assert sorted(runtime.pipeline.process(ids).done) == sorted(ids)
    n_points = runtime.index.count(index_layout.ALIAS)
    runtime.close()  # the command opens the embedded index itself

    command = ["reindex", "--model", "ViT-B-32", "--weights", str(weights), "--settle", "0"]
    result = subprocess.run(
        [LOOKALIKE, *command, "--licence", "CC-BY-4.0", "--no-progress"],
        env=service_env(
            LOOKALIKE_DATA_DIR=str(settings.data_dir),
            LOOKALIKE_EMBEDDER__MODEL="efficientnet_lite0",
        ),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    version = report["model_version"]
    assert version.startswith("ViT-B-32-") and report["state"] == "done"
    assert report["embedded"] == n_points and report["failed"] == 0
    assert report["collection"] == index_layout.collection_name(version)

    # The model card says where the weights came from.
    active = catalog.active_model_version("embedder")
    assert active is not None and active.name == version and active.dim == 512
    provenance = active.card["weights"]
    assert provenance["path"] == str(weights)
    assert version.endswith(provenance["sha256"][weights.name][:10])
    assert provenance["licence"] == active.card["loader"]["licence"] == "CC-BY-4.0"
    assert active.card["text"] is True

    index = EdgeIndex(settings.qdrant_path)
    try:
        assert index.resolve(index_layout.ALIAS) == report["collection"]
        # A photo, end to end: detector, the CLIP image tower, k-NN, the catalog's products.
        with TestClient(create_app(settings, catalog=catalog, index=index)) as client:
            product = shop.catalog.products[0]
            answer = client.post(
                "/recommend",
                files={"image": ("photo.jpg", render_image(product, "front"), "image/jpeg")},
            )
        assert answer.status_code == 200, answer.text
        groups = answer.json()["groups"]
        assert groups and groups[0]["recommendations"]
        urls = {shop.product_url(p) for p in shop.catalog.products}
        assert {hit["url"] for g in groups for hit in g["recommendations"]} <= urls

        # Words alone on /recommend: the text tower reads them among the CLIP pictures.
        pictures = settings.gateway.model_copy(update={"words_paths": "pictures"})
        words_only = settings.model_copy(update={"gateway": pictures})
        with TestClient(create_app(words_only, catalog=catalog, index=index)) as client:
            answer = client.post("/recommend", json={"text": "something red", "k": 3})
        assert answer.status_code == 200, answer.text
        [group] = answer.json()["groups"]
        assert group["answered_by"] == "pictures" and group["intent"]["colour"] == "red"
        assert answer.json()["model_version"] == version
        assert group["recommendations"] and {h["url"] for h in group["recommendations"]} <= urls

        # Words, through the active model's text tower, search the same collection.
        models = ModelProvider(catalog, settings)
        try:
            model = models.current()
            assert model.info.version == version and model.has_text
            [words] = model.embed_text(["red dress"])
            hits = index.search(index_layout.ALIAS, "cnn", words.tolist(), limit=3)
            assert hits and {hit.payload["model_version"] for hit in hits} == {version}
        finally:
            models.close()
    finally:
        index.close()
        catalog.dispose()
