"""The continuous crawl scheduler (``python -m services.scraper``).

Every ``poll_interval_s`` it re-reads the enabled sources from the catalog and starts a crawl
of each source whose ``crawl_interval`` has passed since its last crawl began, at most
``max_concurrent_crawls`` at a time and never two of the same source.

Why a subprocess per crawl (``python -m services.scraper crawl NAME --run-id N``) rather than
one long-lived reactor with ``CrawlerRunner``: Scrapy's settings (politeness, cache, limits)
are per process in practice and differ per source; a crawl's memory (dupefilter, cache
handles, parsed pages) is returned to the OS when it ends; a stuck or crashing crawl cannot
take the scheduler down, and can be killed at its deadline; and the blocking catalog writes
of one crawl never stall another's downloads. Starting a process costs about a second, next to
crawl intervals of hours. The scheduler itself needs no reactor: it is a plain loop.

The scheduler creates the crawl run before starting the child, so a child that dies without
recording its outcome still leaves a ``failed`` run behind, and products are never marked
missed after a crawl that did not finish.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from services.scraper.schemas import SourceConfig
from shared.db import Catalog, CrawlStatus, SourceOut
from shared.db.sources import CrawlInProgressError
from shared.errors import ConfigurationError
from shared.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
"""How long a crawl gets to stop cleanly (SIGTERM) before it is killed."""


def crawl_command(source_name: str, run_id: int | None = None) -> list[str]:
    command = [sys.executable, "-m", "services.scraper", "crawl", source_name]
    return [*command, "--run-id", str(run_id)] if run_id is not None else command


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a crawl process: this one's, with the stores of ``settings``."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.catalog_url,
        CELERY_BROKER_URL=settings.broker_url,
        LOOKALIKE_DATA_DIR=str(settings.data_dir),
        LOOKALIKE_LOG_LEVEL=settings.log_level,
    )
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def crawl_in_subprocess(
    source_name: str,
    settings: Settings,
    *,
    run_id: int | None = None,
    timeout_s: float | None = None,
    log_path: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one crawl in a fresh process and wait for it (used by tests and scripts)."""
    output = log_path.open("ab") if log_path else None
    try:
        return subprocess.run(  # noqa: S603 - our own interpreter and module
            crawl_command(source_name, run_id),
            env=child_environment(settings),
            stdout=output or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    finally:
        if output is not None:
            output.close()


@dataclass
class _Crawl:
    source: SourceOut
    run_id: int
    process: subprocess.Popen[bytes]
    deadline: float
    stopping_since: float | None = None


@dataclass
class Scheduler:
    """Starts due crawls as subprocesses and watches them; :meth:`run_forever` loops."""

    settings: Settings
    catalog: Catalog
    log_dir: Path | None = None
    """Where crawl processes write their logs (``<source>.log``); None: inherit ours."""
    running: dict[str, _Crawl] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def due(self, now: datetime | None = None) -> list[SourceOut]:
        """Enabled sources not running now whose interval has passed since their last crawl."""
        now = now or datetime.now(UTC)
        due = []
        for source in self.catalog.list_sources(enabled_only=True):
            if source.name in self.running:
                continue
            try:
                interval = SourceConfig.of(source).crawl_interval
            except ConfigurationError as exc:
                log.error("%s: not crawled: %s", source.name, exc.message)
                continue
            last = self.catalog.crawl_runs(source.id, limit=1)
            if not last or _aware(last[0].started_at) + interval <= now:
                due.append(source)
        return due

    def crawling(self) -> list[str]:
        """The sources whose crawl process is still alive: a crawl that ended is not listed,
        even before the next tick reaps it (up to ``poll_interval_s`` later)."""
        alive = [name for name, crawl in list(self.running.items()) if crawl.process.poll() is None]
        return sorted(alive)

    def tick(self) -> None:
        """Reap finished crawls, stop overdue ones, start due ones."""
        self.reap()
        free = self.settings.scraper.max_concurrent_crawls - len(self.running)
        if free <= 0 or self._stop.is_set():
            return
        for source in self.due()[:free]:
            self.start(source)

    def start(self, source: SourceOut) -> None:
        try:
            run = self.catalog.start_crawl_run(
                source.id, lease_s=self.settings.scraper.crawl_lease_s
            )
        except CrawlInProgressError as exc:
            log.info("%s: not started: %s", source.name, exc.message)
            return
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{source.name}.log").open("ab")
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                crawl_command(source.name, run.id),
                env=child_environment(self.settings),
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output is not None:
                output.close()
        deadline = time.monotonic() + self.settings.scraper.crawl_timeout_s + STOP_GRACE_S
        self.running[source.name] = _Crawl(source, run.id, process, deadline)
        log.info("%s: started crawl %d (pid %d)", source.name, run.id, process.pid)

    def reap(self) -> None:
        now = time.monotonic()
        for name, crawl in list(self.running.items()):
            code = crawl.process.poll()
            if code is None:
                if now > crawl.deadline:
                    self._stop_crawl(crawl, reason="deadline")
                continue
            del self.running[name]
            self._settle(crawl, code)

    def _stop_crawl(self, crawl: _Crawl, *, reason: str) -> None:
        if crawl.stopping_since is None:
            log.warning("%s: stopping crawl %d (%s)", crawl.source.name, crawl.run_id, reason)
            crawl.process.terminate()
            crawl.stopping_since = time.monotonic()
        elif time.monotonic() - crawl.stopping_since > STOP_GRACE_S:
            log.error("%s: killing crawl %d", crawl.source.name, crawl.run_id)
            crawl.process.kill()

    def _settle(self, crawl: _Crawl, code: int) -> None:
        """A crawl process ended: make sure its run has an outcome."""
        runs = self.catalog.crawl_runs(crawl.source.id, limit=20)
        run = next((r for r in runs if r.id == crawl.run_id), None)
        if run is not None and run.status is CrawlStatus.RUNNING:
            self.catalog.finish_crawl_run(
                run.id,
                status=CrawlStatus.FAILED,
                pages=0,
                items=0,
                errors=1,
                stats={"outcome": f"crawl process exited with status {code}", "complete": False},
            )
            log.error("%s: crawl %d died (exit status %d)", crawl.source.name, run.id, code)
        else:
            log.info("%s: crawl %d ended (exit status %d)", crawl.source.name, crawl.run_id, code)

    def fail_abandoned(self) -> int:
        """Runs left ``running`` by a scheduler that died, older than any crawl may take."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.scraper.crawl_timeout_s + 60)
        count = 0
        for source in self.catalog.list_sources():
            for run in self.catalog.crawl_runs(source.id, limit=20):
                if run.status is CrawlStatus.RUNNING and _aware(run.started_at) < cutoff:
                    self.catalog.finish_crawl_run(
                        run.id,
                        status=CrawlStatus.FAILED,
                        pages=run.pages,
                        items=run.items,
                        errors=run.errors + 1,
                        stats={**run.stats, "outcome": "abandoned", "complete": False},
                    )
                    count += 1
        return count

    def stop(self) -> None:
        self._stop.set()

    def run_in_background(self) -> threading.Thread:
        """Run the loop on a daemon thread (an embedded stack); :meth:`stop` ends it."""
        thread = threading.Thread(target=self.run_forever, name="crawl-scheduler", daemon=True)
        thread.start()
        return thread

    def run_forever(self) -> None:
        """Loop until :meth:`stop` (or SIGTERM/SIGINT when run from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        abandoned = self.fail_abandoned()
        if abandoned:
            log.warning("marked %d abandoned crawl runs as failed", abandoned)
        log.info(
            "scheduler: polling every %.0fs, up to %d crawls at a time",
            self.settings.scraper.poll_interval_s,
            self.settings.scraper.max_concurrent_crawls,
        )
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.settings.scraper.poll_interval_s)
        self.shutdown()

    def shutdown(self) -> None:
        """Stop running crawls (they end as failed: incomplete) and settle their runs."""
        for crawl in self.running.values():
            self._stop_crawl(crawl, reason="scheduler stopping")
        deadline = time.monotonic() + STOP_GRACE_S
        while self.running and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.2)
        for crawl in list(self.running.values()):
            crawl.process.kill()
            crawl.process.wait()
        self.reap()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; the catalog stores UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
