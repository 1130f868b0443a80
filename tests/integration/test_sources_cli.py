"""``lookalike sources add|list`` and ``lookalike crawl`` against an embedded catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli import main
from services.demo_shop import DemoCatalog, DemoShop
from shared.db import Catalog, SourceIn
from shared.settings import Settings, get_settings
from tests.garment_support import add_product

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_sources_add_list_and_a_one_shot_crawl(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    with DemoShop(DemoCatalog.generate(8, seed=4)) as shop:
        shops = tmp_path / "shops.yaml"
        shops.write_text(
            "sources:\n"
            "  - name: demo\n"
            f"    start_urls: [{shop.url}/]\n"
            "    allow_private_addresses: true\n"
            "    demo: true\n"
            "    crawl_interval: 2h\n"
            "  - name: later\n"
            "    base_url: https://later.example/\n"
            "    enabled: false\n"
        )
        added = runner.invoke(main, ["sources", "add", str(shops)])
        assert added.exit_code == 0, added.output
        assert "source demo (enabled)" in added.output
        assert "source later (disabled)" in added.output
        again = runner.invoke(main, ["sources", "add", str(shops)])  # idempotent by name
        assert again.exit_code == 0, again.output

        listed = runner.invoke(main, ["sources", "list"])
        assert listed.exit_code == 0, listed.output
        assert "never crawled" in listed.output

        # A crawl starts a Twisted reactor: in its own process, as users run it.
        env = {**os.environ, "LOOKALIKE_DATA_DIR": str(settings.data_dir)}
        crawl = subprocess.run(
            [str(Path(sys.executable).with_name("lookalike")), "crawl", "demo", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert crawl.returncode == 0, crawl.stderr.decode()
        run = json.loads(crawl.stdout)
        assert (run["status"], run["items"], run["errors"]) == ("succeeded", 8, 0)

    lines = runner.invoke(main, ["sources", "list", "--json"]).output.splitlines()
    by_name = {row["name"]: row for row in map(json.loads, lines)}
    assert by_name["demo"]["config"]["crawl_interval"] == "PT2H"
    assert by_name["demo"]["last_crawl"]["status"] == "succeeded"
    assert by_name["later"]["enabled"] is False
    assert Catalog.from_settings(settings).stats().products_active == 8


def test_sources_add_reports_bad_files(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: x\n    start_urls: [not-a-url]\n")
    result = runner.invoke(main, ["sources", "add", str(bad)])
    assert result.exit_code == 1
    assert "not an absolute http(s) URL" in result.output


def test_crawl_of_an_unknown_source_fails_cleanly(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_DATA_DIR": str(settings.data_dir)}
    settings.ensure_dirs()
    Catalog.from_settings(settings).migrate()
    result = subprocess.run(
        [sys.executable, "-m", "services.scraper", "crawl", "nope"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no source named 'nope'" in result.stderr.decode()


def test_sources_show_the_garment_class_of_each_category(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    shops = tmp_path / "shops.yaml"
    shops.write_text(
        "sources:\n"
        "  - name: acme\n"
        "    base_url: https://shop.example/\n"
        "    garment_map: {Neuheiten: Pants}\n"
        "  - name: other\n"
        "    base_url: https://other.example/\n"
    )
    assert runner.invoke(main, ["sources", "add", str(shops)]).exit_code == 0
    catalog = Catalog.from_settings(settings)
    acme = catalog.get_source("acme").id
    add_product(catalog, acme, 1, "Hosen", ["jeans", "trousers", "trousers"])
    add_product(catalog, acme, 2, "Hosen", [])
    add_product(catalog, acme, 3, "Casual Shoes", [])
    add_product(catalog, acme, 4, "Neuheiten", ["dress"])
    add_product(catalog, acme, 5, "Sonstiges\x1b[2J", ["bag"])
    add_product(catalog, acme, 6, None, ["top"])

    shown = runner.invoke(main, ["sources", "show", "acme"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "acme (enabled): https://shop.example/"
    assert "  garment_map: Neuheiten -> trousers" in lines
    assert "  never crawled" in lines
    table = {line.split("  ")[0]: line.split() for line in lines if "  " in line[:20]}
    assert table["CATEGORY"] == [
        "CATEGORY",
        "PRODUCTS",
        "GARMENT",
        "PARENT",
        "HOW",
        "VOTES",
        "SHARE",
    ]
    assert table["Hosen"] == ["Hosen", "2", "trousers", "bottom", "votes", "3", "100%"]
    assert table["Casual Shoes"][3:6] == ["footwear", "footwear", "name"]
    assert table["Neuheiten"][1:7] == ["1", "trousers", "bottom", "operator", "1", "0%"]
    assert table["Sonstiges?[2J"][1:] == ["1", "?", "?", "unknown", "1", "100%", "<-", "unknown"]
    assert table["(no category)"][3:6] == ["?", "?", "unknown"]
    assert "1 category has no garment class" in shown.output
    assert 'garment_map: {"Sonstiges?[2J": <class>}' in shown.output
    assert "Classes: top, t-shirt, shirt" in shown.output
    assert "\x1b" not in shown.output

    as_json = runner.invoke(main, ["sources", "show", "acme", "--json"])
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["source"]["config"]["garment_map"] == {"Neuheiten": "trousers"}
    assert body["last_crawl"] is None
    hosen = next(row for row in body["categories"] if row["category"] == "Hosen")
    assert hosen == {
        "source_id": acme,
        "source": "acme",
        "category": "Hosen",
        "garment": "trousers",
        "parent": "bottom",
        "how": "votes",
        "votes": 3,
        "share": 1.0,
        "products": 2,
    }

    empty = runner.invoke(main, ["sources", "show", "other"])
    assert empty.exit_code == 0 and "No active products yet" in empty.output

    missing = runner.invoke(main, ["sources", "show", "nope"])
    assert missing.exit_code == 2
    assert "no source named 'nope'; the sources are: acme, other" in missing.output


def test_sources_disable_enable_and_remove(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    shops = tmp_path / "shops.yaml"
    shops.write_text("sources:\n  - name: demo-shop\n    base_url: https://demo.example/\n")
    assert runner.invoke(main, ["sources", "add", str(shops)]).exit_code == 0
    catalog = Catalog.from_settings(settings)
    demo = catalog.get_source("demo-shop").id
    for n in range(3):
        add_product(catalog, demo, n, "Hosen", ["trousers"])

    disabled = runner.invoke(main, ["sources", "disable", "demo-shop"])
    assert disabled.exit_code == 0, disabled.output
    assert "source demo-shop disabled: 3 products no longer recommended" in disabled.output
    assert catalog.stats().products_active == 0
    assert "demo-shop                disabled" in runner.invoke(main, ["sources", "list"]).output

    enabled = runner.invoke(main, ["sources", "enable", "demo-shop"])
    assert enabled.exit_code == 0, enabled.output
    assert "source demo-shop enabled: 3 products recommended again" in enabled.output
    assert catalog.stats().products_active == 3

    # Re-adding it with enabled: false takes its products out too.
    shops.write_text(shops.read_text() + "    enabled: false\n")
    assert runner.invoke(main, ["sources", "add", str(shops)]).exit_code == 0
    assert catalog.stats().products_active == 0

    kept = runner.invoke(main, ["sources", "remove", "demo-shop"], input="n\n")
    assert kept.exit_code == 1 and "Aborted" in kept.output
    assert "Remove source demo-shop with its products and crawl history?" in kept.output
    assert catalog.get_source("demo-shop")

    removed = runner.invoke(main, ["sources", "remove", "demo-shop", "--yes"])
    assert removed.exit_code == 0, removed.output
    assert "source demo-shop removed with its 3 products" in removed.output
    assert catalog.list_sources() == []
    assert catalog.stats().products_active + catalog.stats().products_inactive == 0

    for command in ("disable", "enable", "remove"):
        yes = ["--yes"] if command == "remove" else []
        missing = runner.invoke(main, ["sources", command, "demo-shop", *yes])
        assert missing.exit_code == 2, (command, missing.output)
        assert "no source named 'demo-shop'; there are no sources yet" in missing.output


def test_a_disabled_source_is_not_crawled(settings: Settings, tmp_path: Path) -> None:
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    catalog.upsert_source(SourceIn(name="off", base_url="https://off.example/", enabled=False))
    env = {**os.environ, "LOOKALIKE_DATA_DIR": str(settings.data_dir)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lookalike")), "crawl", "off"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "off is disabled: `lookalike sources enable off` first" in result.stderr.decode()
