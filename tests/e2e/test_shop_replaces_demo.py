"""Issue 27's done-when: ``lookalike run``, a real shop registered beside the demo, the demo
removed: answers hold no demo product and no broken image, with no restart; and the demo shop
is served on every start while its source is enabled."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.demo_shop import DemoCatalog, DemoShop
from services.demo_shop.catalog import DemoProduct, render_image
from services.embedded import DEMO_SOURCE, wants_demo_shop
from shared.db import Catalog, CrawlStatus, ImageState, SourceIn
from shared.settings import Settings
from tests.ingest_support import link_models, shared_models_dir
from tests.stack import free_port, running_stack, stack_env, wait_until_ready

pytestmark = pytest.mark.e2e

PRODUCTS = 12


def _lookalike(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lookalike")), *args],
        env=stack_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(log.read_text())


def _urls(client: httpx.Client, product: DemoProduct, k: int) -> list[str]:
    answer = client.post(
        "/recommend",
        files={"image": ("photo.jpg", render_image(product, "front"), "image/jpeg")},
        data={"cross_category": "true", "k": str(k)},
    )
    assert answer.status_code == 200, answer.text
    return [r["url"] for g in answer.json()["groups"] for r in g["recommendations"]]


def _crawled(catalog: Catalog, name: str, timeout_s: float = 60) -> None:
    source_id = catalog.get_source(name).id
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(run.status is CrawlStatus.SUCCEEDED for run in catalog.crawl_runs(source_id)):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} not crawled in {timeout_s} s: {catalog.crawl_runs(source_id)}")


def _indexed(catalog: Catalog, timeout_s: float = 90) -> None:
    """Every active image of the catalog done (or failed), and at least one done."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        images = catalog.ingest_progress().images
        waiting = images.get(ImageState.PENDING, 0) + images.get(ImageState.PROCESSING, 0)
        if images.get(ImageState.DONE, 0) and not waiting:
            return
        time.sleep(0.5)
    raise AssertionError(f"not indexed in {timeout_s} s: {catalog.ingest_progress()}")


def test_a_real_shop_replaces_the_demo_with_no_restart(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    link_models(tmp_path / "data", shared_models_dir(tmp_path_factory))
    boutique = DemoCatalog.generate(PRODUCTS, seed=27)
    with (
        DemoShop(boutique, port=free_port()) as shop,
        running_stack(tmp_path, products=PRODUCTS) as (stack, process),
    ):
        _healthy(stack.url, process, stack.log)
        assert wait_until_ready(stack.url).status_code == 200
        catalog = Catalog.from_settings(Settings(_env_file=None, data_dir=stack.data_dir))
        _indexed(catalog)
        demo_url = catalog.get_source(DEMO_SOURCE).base_url

        shops = tmp_path / "shops.yaml"
        shops.write_text(
            "sources:\n"
            "  - name: boutique\n"
            f"    start_urls: [{shop.url}/]\n"
            f"    allow_private_hosts: [{shop.url.removeprefix('http://')}]\n"
            "    politeness: {download_delay: 0, concurrency: 8}\n"
        )
        added = _lookalike(stack.data_dir, "sources", "add", str(shops))
        assert added.returncode == 0, added.stderr
        crawled = _lookalike(stack.data_dir, "crawl", "boutique")
        # 75: the stack's scheduler got to it first (one crawl per source); wait for that one.
        assert crawled.returncode in (0, 75), crawled.stderr
        _crawled(catalog, "boutique")
        _indexed(catalog)

        with httpx.Client(base_url=stack.url, timeout=60) as client:
            before = _urls(client, boutique.products[0], k=2 * PRODUCTS)
        assert any(url.startswith(demo_url) for url in before), "the demo answers beside it"

        removed = _lookalike(stack.data_dir, "sources", "remove", DEMO_SOURCE, "--yes")
        assert removed.returncode == 0, removed.stderr
        assert f"source {DEMO_SOURCE} removed with its {PRODUCTS} products" in removed.stdout

        with httpx.Client(base_url=stack.url, timeout=60) as client:
            for product in (boutique.products[0], boutique.products[5]):
                answer = client.post(
                    "/recommend",
                    files={"image": ("photo.jpg", render_image(product, "front"), "image/jpeg")},
                    data={"cross_category": "true", "k": str(PRODUCTS)},
                )
                assert answer.status_code == 200, answer.text
                hits = [r for g in answer.json()["groups"] for r in g["recommendations"]]
                assert hits, answer.json()
                for hit in hits:
                    assert hit["url"].startswith(shop.url), hit
                    assert not hit["url"].startswith(demo_url)
                    assert httpx.get(hit["image_url"], timeout=10).status_code == 200, hit
            examples = client.get("/storefront/examples").json()
            titles = {f"Product photo: {p.title}" for p in boutique.products}
            assert examples and {e["alt"] for e in examples} <= titles
        assert process.poll() is None, "no restart"


def test_the_demo_shop_is_served_while_its_source_is_enabled(sqlite_catalog: Catalog) -> None:
    assert wants_demo_shop(sqlite_catalog), "a first run"
    demo = SourceIn(name=DEMO_SOURCE, base_url="http://127.0.0.1:8001")
    sqlite_catalog.upsert_source(demo)
    sqlite_catalog.upsert_source(SourceIn(name="boutique", base_url="https://shop.example/"))
    assert wants_demo_shop(sqlite_catalog), "a restart after a real shop was added"
    sqlite_catalog.disable_source(DEMO_SOURCE)
    assert not wants_demo_shop(sqlite_catalog)
    sqlite_catalog.remove_source(DEMO_SOURCE)
    assert not wants_demo_shop(sqlite_catalog)
