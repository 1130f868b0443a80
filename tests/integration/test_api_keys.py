"""Storefront API keys in the catalog (both databases) and ``lookalike keys``: made for
existing shops, stored only hashed, listed without the key, removed by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from services.cli import main
from shared.db import ApiKeyIn, Catalog, SourceIn
from shared.db.models import ApiKey
from shared.errors import ConflictError, InvalidInputError, NotFoundError
from shared.settings import Settings, get_settings

pytestmark = pytest.mark.integration


def _shops(catalog: Catalog) -> None:
    for name in ("north", "south"):
        catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/"))


def test_keys_are_hashed_bound_to_existing_shops_and_removed(catalog: Catalog) -> None:
    _shops(catalog)
    made = catalog.add_api_key(ApiKeyIn(name="web", shops=("south", "north", "south")))
    assert made.key.startswith("lk_") and len(made.key) > 40
    assert made.shops == ["north", "south"]
    with catalog.reading() as session:
        [stored] = session.scalars(select(ApiKey.key_hash)).all()
    assert made.key not in stored and len(stored) == 64, "never stored in clear"
    found = catalog.api_key(made.key)
    assert found is not None and (found.name, found.shops) == ("web", ["north", "south"])
    assert catalog.api_key(made.key + "x") is None
    assert [key.name for key in catalog.list_api_keys()] == ["web"]
    assert "key" not in catalog.list_api_keys()[0].model_dump()

    with pytest.raises(ConflictError, match="an API key named 'web' exists already"):
        catalog.add_api_key(ApiKeyIn(name="web", shops=("north",)))
    with pytest.raises(InvalidInputError, match="no shop \\(source\\) named 'east'"):
        catalog.add_api_key(ApiKeyIn(name="other", shops=("north", "east")))
    catalog.remove_api_key("web")
    assert catalog.api_key(made.key) is None
    with pytest.raises(NotFoundError, match="no API key named 'web'"):
        catalog.remove_api_key("web")


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_keys_add_list_remove(runner: CliRunner, settings: Settings) -> None:
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    _shops(catalog)

    added = runner.invoke(main, ["keys", "add", "web", "--shop", "north", "--shop", "south"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert key.startswith("lk_") and "\n" not in key, "the key alone on stdout"
    assert "key web for north, south" in added.stderr and "shown only now" in added.stderr
    found = catalog.api_key(key)
    assert found is not None and found.shops == ["north", "south"]

    listed = runner.invoke(main, ["keys", "list"])
    assert listed.exit_code == 0 and listed.stdout.startswith("web ")
    assert "north, south" in listed.stdout and key not in listed.stdout
    as_json = runner.invoke(main, ["keys", "list", "--json"])
    assert '"shops": ["north", "south"]' in as_json.stdout and key not in as_json.stdout

    refused = {
        "a name taken": (["web", "--shop", "north"], 1, "an API key named 'web' exists already"),
        "an unknown shop": (["app", "--shop", "east"], 1, "no shop (source) named 'east'"),
        "no shop": (["app"], 2, "Missing option '--shop'"),
        "a bad name": (["my key", "--shop", "north"], 2, "name: String should match pattern"),
    }
    for what, (args, status, said) in refused.items():
        result = runner.invoke(main, ["keys", "add", *args])
        assert (result.exit_code, said in result.output) == (status, True), (what, result.output)
    assert [k.name for k in catalog.list_api_keys()] == ["web"], "nothing made by a refusal"

    removed = runner.invoke(main, ["keys", "remove", "web"])
    assert removed.exit_code == 0 and "key web removed" in removed.stdout
    assert catalog.api_key(key) is None
    again = runner.invoke(main, ["keys", "remove", "web"])
    assert again.exit_code == 1 and "no API key named 'web'" in again.output
    catalog.dispose()
