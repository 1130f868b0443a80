"""The embedded stack's in-process ingest consumer survives its own death: whatever stops it
(a model that fails to load, a crash in Celery) is reported by ``check()`` (``/readyz``) and
the consumer is restarted."""

from __future__ import annotations

import pytest

from services.ingest import tasks
from services.ingest.tasks import InProcessWorker
from shared.db import Catalog
from shared.settings import Settings
from shared.vectors import open_index
from tests.ingest_support import link_models, shared_models_dir, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


def test_a_consumer_that_dies_is_reported_then_restarted(
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    monkeypatch.setattr(tasks, "RESTART_AFTER_S", 3.0)
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    index = open_index(None, settings.data_dir / "qdrant")
    worker = InProcessWorker(settings, catalog, index, sweep_every_s=3600)
    warm = worker.runtime.warm
    calls: list[int] = []

    def dies_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise AssertionError("GLOBALS.in_onnx_export must be False")
        warm()

    monkeypatch.setattr(worker.runtime, "warm", dies_once)
    try:
        with worker:
            wait_for(lambda: worker.restarts == 1, 30, "the consumer to die once")
            check = worker.check()
            assert not check.ok
            assert check.detail.startswith("restarting after AssertionError"), check
            wait_for(lambda: worker.alive, 120, "the consumer to be restarted")
            check = worker.check()
            assert check.ok, check
            assert "restarted 1x" in check.detail
    finally:
        index.close()
        catalog.dispose()


def test_check_reports_a_consumer_still_starting(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    index = open_index(None, settings.data_dir / "qdrant")
    worker = InProcessWorker(settings, catalog, index, sweep_every_s=3600)
    try:
        check = worker.check()
        assert not check.ok
        assert check.detail == "the consumer thread is not running"
    finally:
        index.close()
        catalog.dispose()
