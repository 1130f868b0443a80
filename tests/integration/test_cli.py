"""The ``lookalike`` command line against a real embedded catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from services.cli import main
from shared.db import Catalog, ProductIn, SourceIn
from shared.db.migrate import head_revision
from shared.settings import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_migrate_then_query_with_bound_parameters(runner: CliRunner, settings: Settings) -> None:
    migrated = runner.invoke(main, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert f"catalog at revision {head_revision()} (sqlite)" in migrated.output

    catalog = Catalog.from_settings(settings)
    source = catalog.upsert_source(SourceIn(name="acme", base_url="https://shop.example"))
    catalog.upsert_products(
        source.id,
        [ProductIn(canonical_url=f"https://shop.example/p/{n}", title=f"P{n}") for n in range(3)],
    )

    result = runner.invoke(
        main, ["query", "SELECT title FROM products WHERE title <> :t ORDER BY id", "-p", "t=P1"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.output.splitlines()] == [
        {"title": "P0"},
        {"title": "P2"},
    ]


def test_query_errors_are_one_clear_line(runner: CliRunner) -> None:
    runner.invoke(main, ["migrate"])
    refused = runner.invoke(main, ["query", "DROP TABLE products"])
    assert refused.exit_code == 1
    assert "only read queries are allowed" in refused.output
    malformed = runner.invoke(main, ["query", "SELECT 1", "-p", "oops"])
    assert malformed.exit_code == 2
    assert "NAME=VALUE" in malformed.output


def test_status_reports_an_unmigrated_catalog(runner: CliRunner) -> None:
    result = runner.invoke(main, ["status"])
    assert result.exit_code == 1
    assert "lookalike migrate" in result.output


def test_bench_refuses_unknown_names(runner: CliRunner) -> None:
    result = runner.invoke(main, ["bench", "--only", "nope"])
    assert result.exit_code == 2
    assert "unknown benchmark" in result.output
