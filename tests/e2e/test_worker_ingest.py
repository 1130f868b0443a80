"""Real ``lookalike worker`` processes on real Postgres and Redis, the demo shop serving the
images: work is done once, and killing a worker or losing the queue loses nothing.

Each worker owns its embedded index (Qdrant Edge) in the test's data dir; the test reads the
index after the worker has exited."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from shared import index_layout
from shared.db import Catalog, ImageIn, ProductIn
from shared.db.models import GarmentCrop, ImageState, utcnow
from shared.queue import enqueue_images, queue_depth, request_index_sync
from shared.settings import Settings
from shared.vectors import EdgeIndex, PayloadFilter
from tests.ingest_support import (
    LOOKALIKE,
    Process,
    demo_items,
    demo_source,
    hostile_server,
    server_mode_env,
    settled,
    wait_for,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

SLOW = {"politeness": {"download_delay": 0.4, "concurrency": 1}}
"""Two images a second from the shop, so a test can act while a task runs."""


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(6, seed=5), port=0) as running:
        yield running


@pytest.fixture
def env(
    settings: Settings,
    postgres_url: str,
    redis_db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    return server_mode_env(
        settings,
        postgres_url,
        redis_db_url,
        tmp_path_factory,
        LOOKALIKE_LOG_LEVEL="INFO",
        LOOKALIKE_INGEST__CLAIM_LEASE_S="4",
    )


@pytest.fixture
def producer(settings: Settings, postgres_url: str, redis_db_url: str) -> Settings:
    """What the scraper would use to enqueue: the same catalog and broker as the worker."""
    return settings.model_copy(
        update={"database_url": postgres_url, "celery_broker_url": redis_db_url}
    )


def _worker(env: dict[str, str], log: Path, *args: str) -> Process:
    return Process(["worker", *args], env, log)


def _check_index(catalog: Catalog, data_dir: Path, expected: int) -> None:
    """One point per recorded crop, one crop per image, each point finds its own product."""
    with catalog.reading() as session:
        crops = list(session.query(GarmentCrop))
    assert len(crops) == expected
    index = EdgeIndex(data_dir / "qdrant")
    try:
        assert index.count(index_layout.ALIAS) == expected
        points = index.retrieve(
            index_layout.ALIAS, [str(crop.point_id) for crop in crops], with_vectors=True
        )
        assert len(points) == expected
        for point in [p for p in points if p.payload["active"] == 1][:4]:
            assert point.vectors is not None
            where = PayloadFilter(equals={"active": 1})
            [best] = index.search(
                index_layout.ALIAS, "cnn", point.vectors["cnn"], limit=1, where=where
            )
            assert best.payload["product_id"] == point.payload["product_id"]
    finally:
        index.close()


def test_worker_ingests_the_catalog_once(
    pg_catalog: Catalog, shop: DemoShop, env: dict[str, str], producer: Settings, tmp_path: Path
) -> None:
    source = demo_source(pg_catalog, shop.url)
    ids = pg_catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
    assert enqueue_images(ids, producer, chunk_size=4)
    assert enqueue_images(ids[:6], producer, chunk_size=3)  # duplicate messages

    worker = _worker(env, tmp_path / "worker.log")
    try:
        with hostile_server() as hostile:
            flaky_shop = demo_source(pg_catalog, hostile, name="flaky-shop")
            flaky = ProductIn(
                canonical_url=f"{hostile}/product/flaky",
                title="flaky",
                images=(ImageIn(url=f"{hostile}/flaky.jpg"),),
            )
            [flaky_id] = pg_catalog.upsert_products(flaky_shop.id, [flaky]).new_image_ids
            assert enqueue_images([flaky_id], producer)
            wait_for(lambda: settled(pg_catalog), 180, f"ingest to finish:\n{worker.output()}")
        wait_for(lambda: queue_depth(producer.broker_url) == 0, 30, "the queue to drain")

        # The scraper's next complete crawl misses a product: it asks the index owner to sync.
        kept = pg_catalog.list_products()[1]
        pg_catalog.mark_unseen(source.id, seen_before=utcnow(), max_missed_runs=1)
        pg_catalog.upsert_products(source.id, demo_items(shop)[1:])
        deactivated = [p.id for p in pg_catalog.list_products(active=False)]
        assert len(deactivated) == 1
        assert request_index_sync(producer, product_ids=deactivated)
        wait_for(
            lambda: "lookalike.index.sync" in worker.output() and "succeeded" in worker.output(),
            60,
            f"the index sync:\n{worker.output()}",
        )
        status = subprocess.run(
            [LOOKALIKE, "ingest-status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        worker.stop()
    body = json.loads(status.stdout)
    assert body["images"]["done"] == len(ids) + 1
    assert body["images"]["failed"] == body["images"]["pending"] == 0
    assert body["queues"] == {"ingest": 0, "index": 0}
    assert body["model"].startswith(f"{producer.embedder.model}-"), "the default model"
    assert f"held by another process: worker (pid {worker.pid} on " in body["index"]["detail"]
    assert all(pg_catalog.get_image(i).attempts == 1 for i in ids), "an image ran twice"
    # 503 the first time: the task retried it (with backoff) and it was done the second time.
    assert "Retry in" in worker.output()
    flaky_image = pg_catalog.get_image(flaky_id)
    assert (flaky_image.state, flaky_image.attempts) == (ImageState.DONE, 2)
    data_dir = Path(env["LOOKALIKE_DATA_DIR"])
    _check_index(pg_catalog, data_dir, len(ids) + 1)
    index = EdgeIndex(data_dir / "qdrant")
    try:
        for product_id, active in [(deactivated[0], 0), (kept.id, 1)]:
            points = index.count(
                index_layout.ALIAS, PayloadFilter(equals={"product_id": product_id})
            )
            where = PayloadFilter(equals={"product_id": product_id, "active": active})
            assert index.count(index_layout.ALIAS, where) == points > 0
    finally:
        index.close()


def test_killed_pool_process_loses_nothing(
    pg_catalog: Catalog, shop: DemoShop, env: dict[str, str], producer: Settings, tmp_path: Path
) -> None:
    source = demo_source(pg_catalog, shop.url, **SLOW)
    ids = pg_catalog.upsert_products(source.id, demo_items(shop, 2)).new_image_ids
    assert enqueue_images(ids, producer, chunk_size=len(ids))

    worker = _worker(env, tmp_path / "worker.log", "--pool", "prefork", "--concurrency", "1")
    try:
        claimed: list[str] = []

        def working() -> bool:
            rows = pg_catalog.run_query(
                "SELECT claimed_by FROM product_images WHERE state = 'processing'"
            )
            claimed[:] = [row["claimed_by"] for row in rows]
            return bool(claimed)

        wait_for(working, 120, f"a task to start:\n{worker.output()}")
        child = int(claimed[0].rsplit(":", 1)[1])
        assert child != worker.pid
        os.kill(child, signal.SIGKILL)  # the pool process, in the middle of its task
        wait_for(lambda: settled(pg_catalog), 120, f"redelivery:\n{worker.output()}")
    finally:
        worker.stop()
    assert "WorkerLostError" in worker.output()  # requeued (task_reject_on_worker_lost) ...
    assert "took back" in worker.output()  # ... and the new pool process reclaimed the images
    images = [pg_catalog.get_image(i) for i in ids]
    assert all(image.state is ImageState.DONE for image in images)
    assert {image.attempts for image in images} == {2}  # claimed again after the kill
    _check_index(pg_catalog, Path(env["LOOKALIKE_DATA_DIR"]), len(ids))


def test_lost_queue_and_killed_worker_are_recovered_by_the_sweeper(
    pg_catalog: Catalog,
    shop: DemoShop,
    env: dict[str, str],
    producer: Settings,
    redis_db_url: str,
    tmp_path: Path,
) -> None:
    source = demo_source(pg_catalog, shop.url, **SLOW)
    ids = pg_catalog.upsert_products(source.id, demo_items(shop, 3)).new_image_ids
    assert enqueue_images(ids, producer, chunk_size=3)
    redis.Redis.from_url(redis_db_url).flushdb()  # Redis lost everything
    assert queue_depth(producer.broker_url) == 0

    def sweep() -> dict[str, object]:
        result = subprocess.run(
            [LOOKALIKE, "sweep", "--once", "--pending-after", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = _worker(env, tmp_path / "first.log")
    try:
        assert sweep()["enqueued_pending"] == len(ids)
        wait_for(
            lambda: pg_catalog.image_state_counts()[ImageState.PROCESSING] > 0,
            120,
            f"a task to start:\n{first.output()}",
        )
    finally:
        first.kill()  # SIGKILL: claims stay `processing`, the reserved messages are lost
    stuck = pg_catalog.image_state_counts()[ImageState.PROCESSING]
    assert stuck > 0
    redis.Redis.from_url(redis_db_url).flushdb()

    second = _worker(env, tmp_path / "second.log")
    try:

        def recovered() -> bool:
            sweep()  # claims not renewed for 4 s back to pending, lost ones enqueued
            return settled(pg_catalog)

        wait_for(recovered, 180, f"recovery:\n{second.output()}")
    finally:
        second.stop()
    assert all(pg_catalog.get_image(i).state is ImageState.DONE for i in ids)
    _check_index(pg_catalog, Path(env["LOOKALIKE_DATA_DIR"]), len(ids))


def test_a_killed_workers_images_are_done_within_a_lease(
    pg_catalog: Catalog,
    shop: DemoShop,
    env: dict[str, str],
    producer: Settings,
    tmp_path: Path,
) -> None:
    """SIGKILL a worker mid-task with the shipped lease (30 s) and time limit (600 s): its
    reserved messages wait out Redis' visibility timeout (an hour), so it is the lease that
    brings its images back, once each."""
    lease = {k: v for k, v in env.items() if k != "LOOKALIKE_INGEST__CLAIM_LEASE_S"}
    source = demo_source(pg_catalog, shop.url, **SLOW)
    ids = pg_catalog.upsert_products(source.id, demo_items(shop, 4)).new_image_ids
    assert enqueue_images(ids, producer, chunk_size=3)

    first = _worker(lease, tmp_path / "first.log")
    try:
        wait_for(
            lambda: pg_catalog.image_state_counts()[ImageState.PROCESSING] > 0,
            120,
            f"a task to start:\n{first.output()}",
        )
    finally:
        first.kill()
    killed_at = time.monotonic()
    held = {
        row["id"]
        for row in pg_catalog.run_query("SELECT id FROM product_images WHERE state = 'processing'")
    }
    assert held

    sweeper = Process(["sweep"], lease, tmp_path / "sweep.log")
    second = _worker(lease, tmp_path / "second.log")
    try:
        wait_for(
            lambda: settled(pg_catalog),
            150,
            f"recovery:\n{second.output()}\n{sweeper.output()}",
        )
        recovered_s = time.monotonic() - killed_at
    finally:
        second.stop()
        sweeper.stop()
    print(f"a killed worker's {len(held)} images done {recovered_s:.1f} s after the kill")
    assert "claims of dead workers returned to pending" in sweeper.output()
    images = {i: pg_catalog.get_image(i) for i in ids}
    assert all(image.state is ImageState.DONE for image in images.values())
    assert all(images[i].attempts == 2 for i in held)  # the dead claim, then one more
    assert all(images[i].attempts == 1 for i in set(ids) - held)  # nobody else twice
    _check_index(pg_catalog, Path(env["LOOKALIKE_DATA_DIR"]), len(ids))  # 0 lost, 0 duplicated
