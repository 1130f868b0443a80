"""How many model threads an ingest process gives each task."""

from __future__ import annotations

import os

import pytest

from services.ingest.pipeline import model_threads
from shared.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cores", "concurrency", "threads"), [(2, 2, 1), (2, 1, 2), (8, 2, 4), (2, 4, 1)]
)
def test_tasks_share_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, concurrency: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    settings = Settings(_env_file=None, worker_concurrency=concurrency)
    assert model_threads(settings) == threads
