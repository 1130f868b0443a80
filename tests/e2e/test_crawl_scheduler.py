"""The crawl scheduler with real crawl processes: due sources, recorded runs, dead crawls,
and ``python -m services.scraper`` stopping cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.demo_shop import DemoCatalog, DemoShop
from services.scraper.scheduler import Scheduler
from shared.db import Catalog, CrawlStatus, SourceIn
from shared.settings import ScraperSettings, Settings

pytestmark = pytest.mark.e2e


def wait_for(
    condition: Callable[[], bool], timeout_s: float = 60, step: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.fixture
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(10, seed=5)) as shop:
        yield shop


@pytest.fixture
def catalog(settings: Settings) -> Iterator[Catalog]:
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    yield catalog
    catalog.dispose()


def demo_source(catalog: Catalog, name: str, url: str, interval: str = "1h") -> int:
    config = {
        "start_urls": [url + "/"],
        "allow_private_addresses": True,
        "demo": True,
        "crawl_interval": interval,
        "politeness": {"retries": 0, "timeout_s": 5},
    }
    return catalog.upsert_source(SourceIn(name=name, base_url=url, config=config)).id


def test_scheduler_crawls_due_sources_on_their_interval(
    catalog: Catalog, settings: Settings, shop: DemoShop, tmp_path: Path
) -> None:
    good = demo_source(catalog, "good", shop.url)
    gone = demo_source(catalog, "gone", "http://127.0.0.1:1")
    catalog.upsert_source(SourceIn(name="off", base_url=shop.url, enabled=False))
    two = settings.model_copy(update={"scraper": ScraperSettings(max_concurrent_crawls=2)})
    scheduler = Scheduler(two, catalog, log_dir=tmp_path / "logs")
    assert sorted(s.name for s in scheduler.due()) == ["gone", "good"]
    scheduler.tick()
    assert sorted(scheduler.running) == ["gone", "good"]
    wait_for(lambda: not scheduler.running, step=scheduler.reap)

    (good_run,) = catalog.crawl_runs(good)
    (gone_run,) = catalog.crawl_runs(gone)
    assert good_run.status is CrawlStatus.SUCCEEDED, (tmp_path / "logs" / "good.log").read_text()
    assert good_run.items == 10
    assert gone_run.status is CrawlStatus.FAILED
    assert gone_run.stats["lookalike/errors/connection_refused"] >= 1
    assert scheduler.due() == []  # both wait an hour, failed or not

    demo_source(catalog, "good", shop.url, interval="1s")
    time.sleep(1.1)
    assert [s.name for s in scheduler.due()] == ["good"]


def test_a_crawl_process_that_dies_leaves_a_failed_run(
    catalog: Catalog, settings: Settings, shop: DemoShop
) -> None:
    source_id = demo_source(catalog, "doomed", shop.url)
    scheduler = Scheduler(settings, catalog)
    scheduler.start(catalog.get_source("doomed"))
    scheduler.running["doomed"].process.kill()
    wait_for(lambda: not scheduler.running, step=scheduler.reap)
    (run,) = catalog.crawl_runs(source_id)
    assert run.status is CrawlStatus.FAILED
    assert run.stats["outcome"] == "crawl process exited with status -9"
    assert run.stats["complete"] is False


def test_python_m_services_scraper_runs_the_scheduler_until_sigterm(
    catalog: Catalog, settings: Settings, shop: DemoShop, tmp_path: Path
) -> None:
    source_id = demo_source(catalog, "demo", shop.url)
    env = {
        **os.environ,
        "LOOKALIKE_DATA_DIR": str(settings.data_dir),
        "LOOKALIKE_SCRAPER__POLL_INTERVAL_S": "0.5",
    }
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.scraper"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: any(r.status is CrawlStatus.SUCCEEDED for r in catalog.crawl_runs(source_id))
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    runs = catalog.crawl_runs(source_id)
    assert len(runs) == 1, "the interval is an hour: one crawl only"
    assert all(run.status is not CrawlStatus.RUNNING for run in runs)
    assert "scheduler: polling every" in log.read_text()


def _lookalike_crawl(
    name: str, settings: Settings, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lookalike")), "crawl", name],
        env={**os.environ, "LOOKALIKE_DATA_DIR": str(settings.data_dir), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_crawl_per_source_at_a_time_across_processes(
    catalog: Catalog, settings: Settings, shop: DemoShop, tmp_path: Path
) -> None:
    source_id = demo_source(catalog, "demo", shop.url)
    held = catalog.start_crawl_run(source_id, holder="pid 4242 on elsewhere")

    second = _lookalike_crawl("demo", settings, tmp_path)
    assert second.returncode == 75, second.stderr
    [line] = second.stderr.strip().splitlines()
    since = f"{held.started_at:%Y-%m-%d %H:%M:%S} UTC"
    assert line == (
        f"demo is being crawled by pid 4242 on elsewhere since {since} (crawl {held.id}); "
        "try again when it ends"
    )
    scheduler = Scheduler(settings, catalog)
    scheduler.start(catalog.get_source("demo"))
    assert scheduler.running == {}, "the scheduler does not start a second crawl either"
    assert [run.id for run in catalog.crawl_runs(source_id)] == [held.id]

    # The holder died: once its lease runs out, the next crawl takes the source over.
    time.sleep(1.1)
    taken = _lookalike_crawl("demo", settings, tmp_path, LOOKALIKE_SCRAPER__CRAWL_LEASE_S="1")
    assert taken.returncode == 0, taken.stderr
    new, old = catalog.crawl_runs(source_id)
    assert (new.status, new.items) == (CrawlStatus.SUCCEEDED, 10)
    assert new.holder is not None and new.holder.startswith("pid ")
    assert old.status is CrawlStatus.FAILED
    assert old.stats["outcome"].startswith("lease expired: taken over by pid ")
