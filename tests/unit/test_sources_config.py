"""Source definitions: the pydantic config, YAML files, and the stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.scraper.schemas import (
    FAST_LOCAL_POLITENESS,
    SourceConfig,
    load_sources_file,
)
from services.scraper.settings import scrapy_settings
from shared.db import SourceOut
from shared.errors import ConfigurationError, InvalidInputError
from shared.settings import Settings

pytestmark = pytest.mark.unit

YAML = """
sources:
  - name: acme
    base_url: https://shop.acme.example
    start_urls: [https://shop.acme.example/women]
    sitemap_urls: [https://shop.acme.example/sitemap.xml]
    selectors:
      product_links: "a.product-card::attr(href)"
      pagination: "a[rel=next]::attr(href)"
      price: "//span[@itemprop='price']/@content"
      images: {css: "img.gallery"}
    category_map: {"T-Shirts": tops}
    crawl_interval: 30m
    max_pages: 500
    politeness: {concurrency: 2, download_delay: 1.5}
  - name: plain
    start_urls: [https://plain.example/]
    enabled: false
"""


def stored(config: dict[str, object], base_url: str = "https://shop.example/") -> SourceOut:
    return SourceOut(
        id=1,
        name="s",
        base_url=base_url,
        config=config,
        enabled=True,
        created_at=datetime.now(UTC),
    )


def test_yaml_file_round_trips_through_the_stored_form(tmp_path: Path) -> None:
    path = tmp_path / "shops.yaml"
    path.write_text(YAML)
    acme, plain = load_sources_file(path)
    config = acme.config
    assert config.selectors.product_links is not None
    assert config.selectors.product_links.css == "a.product-card::attr(href)"
    assert config.selectors.price is not None
    assert config.selectors.price.xpath == "//span[@itemprop='price']/@content"
    assert config.crawl_interval == timedelta(minutes=30)
    assert config.politeness.download_delay == 1.5
    assert plain.enabled is False
    assert plain.to_source_in().base_url == "https://plain.example/"

    source_in = acme.to_source_in()
    again = SourceConfig.of(stored(source_in.config, source_in.base_url))
    assert again == config


def test_the_embedded_demo_source_config_is_valid_and_fast() -> None:
    config = SourceConfig.of(
        stored(
            {
                "start_urls": ["http://127.0.0.1:8001"],
                "allow_private_addresses": True,
                "demo": True,
            }
        )
    )
    assert config.allow_private_addresses
    assert config.politeness == FAST_LOCAL_POLITENESS
    tuned = SourceConfig.model_validate({"demo": True, "politeness": {"concurrency": 16}})
    assert tuned.politeness.concurrency == 16
    assert tuned.politeness.download_delay == 0


def test_a_source_with_nothing_but_a_base_url_crawls_its_home_page() -> None:
    config = SourceConfig.of(stored({}, "https://shop.example/"))
    assert config.start_urls == ["https://shop.example/"]
    assert config.domains() == ["shop.example"]
    assert not config.allow_private_addresses


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"start_urls": ["ftp://x/"]}, "absolute http(s) URL"),
        ({"selectors": {"title": "h1[[["}}, "invalid selector"),
        ({"selectors": {"title": "//h1[@"}}, "invalid selector"),
        ({"product_url_pattern": "(unclosed"}, "invalid regex"),
        ({"crawl_interval": "soon"}, "crawl_interval"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"politeness": {"concurrency": 0}}, "concurrency"),
    ],
)
def test_invalid_configs_say_what_is_wrong(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid config") as caught:
        SourceConfig.of(stored(config))
    assert message in caught.value.message


def test_garment_map_pins_taxonomy_classes_and_names_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "shops.yaml"
    path.write_text(
        "sources:\n"
        "  - name: acme\n"
        "    base_url: https://shop.acme.example\n"
        "    category_map: {Hosen: hosen}\n"
        "    garment_map: {hosen: Pants, Neuheiten: dress}\n"
    )
    (acme,) = load_sources_file(path)
    assert acme.garment_map == {"hosen": "trousers", "Neuheiten": "dress"}  # class names
    assert acme.config.category_map == {"Hosen": "hosen"}  # the label is not renamed
    assert acme.to_source_in().config["garment_map"] == {"hosen": "trousers", "Neuheiten": "dress"}

    path.write_text(
        "sources:\n"
        "  - name: acme\n"
        "    base_url: https://shop.acme.example\n"
        "    garment_map: {Hosen: Beinkleid}\n"
    )
    with pytest.raises(InvalidInputError, match="garment_map") as caught:
        load_sources_file(path)
    message = caught.value.message
    assert "'Beinkleid' is not a garment class" in message
    assert "top, t-shirt, shirt" in message and "trousers" in message
    with pytest.raises(ConfigurationError, match="not a garment class"):
        SourceConfig.of(stored({"garment_map": {"Hosen": "Beinkleid"}}))


def test_bad_yaml_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources: [\n")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_sources_file(path)
    entry = "  - name: a\n    start_urls: [https://a.example/]\n"
    path.write_text("sources:\n" + entry + entry)
    with pytest.raises(InvalidInputError, match="duplicate source names: a"):
        load_sources_file(path)
    path.write_text("sources:\n  - name: 'bad name'\n    base_url: https://a.example/\n")
    with pytest.raises(InvalidInputError, match="name"):
        load_sources_file(path)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_sources_file(tmp_path / "missing.yaml")


def test_politeness_and_safety_become_scrapy_settings(tmp_path: Path) -> None:
    config = SourceConfig.model_validate(
        {"start_urls": ["https://a.example/"], "politeness": {"concurrency": 3}, "max_pages": 9}
    )
    values = scrapy_settings(config, Settings(data_dir=tmp_path))
    assert values["ROBOTSTXT_OBEY"] is True
    assert values["USER_AGENT"].startswith("Lookalike/")
    assert "+https://" in values["USER_AGENT"]
    assert values["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3
    assert values["AUTOTHROTTLE_ENABLED"] is True
    assert values["DOWNLOAD_MAXSIZE"] == 10 * 1024 * 1024
    assert values["REDIRECT_MAX_TIMES"] == 5
    assert values["CLOSESPIDER_PAGECOUNT"] == 9
    assert values["LOOKALIKE_ALLOW_PRIVATE_ADDRESSES"] is False
    assert values["HTTPCACHE_DIR"] == str(tmp_path / "httpcache")
    assert values["REMOTE_CONTROL_ENABLED"] is False
    assert values["TELNETCONSOLE_ENABLED"] is False
