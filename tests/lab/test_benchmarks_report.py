"""The benchmark report store: one benchmark refreshes its section and keeps the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import benchmarks

pytestmark = pytest.mark.unit


def report(**results: dict[str, object]) -> dict[str, object]:
    return {
        "generated_at": "2026-11-25T00:00:00+00:00",
        "machine": {"cores": 2, "cpu": "test", "python": "3.11", "system": "Linux"},
        "results": {name: {"description": f"{name} bench", **f} for name, f in results.items()},
    }


@pytest.fixture
def markdown(tmp_path: Path) -> Path:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nHand-written part.\n")
    benchmarks.write(report(knn={"p95": 6.4}, ingest={"ratio": 0.7}), None, path)
    return path


def test_one_benchmark_refreshes_its_figures_and_keeps_the_others(markdown: Path) -> None:
    benchmarks.write(report(ingest={"ratio": 0.8}), None, markdown)
    stored = json.loads(markdown.with_suffix(".json").read_text())["results"]
    assert stored["knn"]["p95"] == 6.4
    assert stored["ingest"]["ratio"] == 0.8
    text = markdown.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written part.\n")
    assert "| p95 | 6.4 |" in text and "| ratio | 0.8 |" in text
    assert text.count(benchmarks.START) == 1


def test_a_json_elsewhere_leaves_the_markdown_store_alone(markdown: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "run.json"
    benchmarks.write(report(ingest={"ratio": 0.9}), elsewhere, markdown)
    assert json.loads(elsewhere.read_text())["results"].keys() == {"ingest"}
    beside = json.loads(markdown.with_suffix(".json").read_text())["results"]
    assert beside["ingest"]["ratio"] == 0.7
    text = markdown.read_text()
    assert "| p95 | 6.4 |" in text and "| ratio | 0.9 |" in text
