"""Source definitions: what to crawl and how, as stored in ``sources.config`` and in YAML.

A source is usually just a name and a start URL: shops that publish schema.org ``Product``
JSON-LD (or microdata) and a sitemap need nothing else. Selectors, a category mapping and
politeness settings cover the rest::

    sources:
      - name: acme
        base_url: https://shop.acme.example
        start_urls: [https://shop.acme.example/women]
        sitemap_urls: [https://shop.acme.example/sitemap_products.xml]
        selectors:
          product_links: "a.product-card::attr(href)"
          pagination: "a[rel=next]::attr(href)"
          price: "//span[@itemprop='price']/@content"     # XPath: starts with / or (
        category_map: {"T-Shirts": tops, "Jeans": pants}
        garment_map: {"Hosen": trousers}                 # category -> shared.taxonomy class
        crawl_interval: 6h
        politeness: {concurrency: 2, download_delay: 1.0}

A shop that publishes a product feed names it instead of pages (see
:mod:`services.scraper.feeds`)::

      - name: acme-feed
        feed_url: https://shop.acme.example/products.json   # or a Merchant feed.xml / .tsv
        format: auto          # shopify | merchant-xml | merchant-tsv; auto reads the content
        currency: EUR         # required for Shopify (its feed has none)
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import yaml
from lxml import etree
from parsel import Selector as ParselSelector
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.db import SourceIn, SourceOut
from shared.errors import ConfigurationError, InvalidInputError
from shared.netsafe import host_port
from shared.taxonomy import class_named

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(value: object) -> object:
    """Accept ``90`` (seconds), ``"30m"``, ``"6h"``, ``"1d"`` as well as ISO 8601 durations."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Selector(_Model):
    """A CSS or XPath query. In YAML a plain string is XPath when it starts with ``/`` or
    ``(``, CSS otherwise (``::text`` and ``::attr(name)`` work); ``{xpath: ...}`` or
    ``{css: ...}`` says it explicitly."""

    css: str | None = None
    xpath: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return {"xpath": text} if text.startswith(("/", "(")) else {"css": text}
        return value

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        if (self.css is None) == (self.xpath is None):
            raise ValueError("a selector has exactly one of css or xpath")
        probe = ParselSelector(text="<html></html>")
        try:
            if self.css is not None:
                probe.css(self.css)
            else:
                probe.xpath(self.xpath or "")
        except (ValueError, SyntaxError, etree.XPathError) as exc:
            raise ValueError(f"invalid selector {self.query!r}: {exc}") from exc
        return self

    @property
    def query(self) -> str:
        return self.css if self.css is not None else self.xpath or ""


class Selectors(_Model):
    """Optional per-site selectors. Links: where product pages and further listing pages
    are. Fields: what to read from a product page; a field without a selector (or whose
    selector finds nothing) falls back to the page's structured data."""

    product_links: Selector | None = None
    pagination: Selector | None = None
    title: Selector | None = None
    price: Selector | None = None
    currency: Selector | None = None
    brand: Selector | None = None
    category: Selector | None = None
    images: Selector | None = None
    sku: Selector | None = None
    availability: Selector | None = None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "title",
        "price",
        "currency",
        "brand",
        "category",
        "images",
        "sku",
        "availability",
    )

    @property
    def any_links(self) -> bool:
        return self.product_links is not None or self.pagination is not None

    @property
    def any_fields(self) -> bool:
        return any(getattr(self, name) is not None for name in self.FIELDS)


class Politeness(_Model):
    """How hard to hit the site: per-domain concurrency, delay, AutoThrottle, limits."""

    concurrency: int = Field(default=4, ge=1, le=64)
    download_delay: float = Field(default=0.25, ge=0, le=60)
    autothrottle: bool = True
    autothrottle_target_concurrency: float = Field(default=2.0, gt=0, le=64)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    retries: int = Field(default=2, ge=0, le=10)


FAST_LOCAL_POLITENESS = Politeness(concurrency=8, download_delay=0, autothrottle=False)
"""What the generated demo shop (``demo: true``) is crawled with; its own ``politeness``
keys override these."""


class SourceConfig(_Model):
    """The ``sources.config`` JSON of one source (everything but name, base URL, enabled)."""

    start_urls: list[str] = Field(default_factory=list)
    sitemap_urls: list[str] = Field(default_factory=list)
    sitemaps: Literal["auto", "only", "off"] = "auto"
    """``auto``: also read the sitemaps robots.txt announces; ``only``: discover product pages
    from sitemaps alone; ``off``: never read sitemaps (``sitemap_urls`` is then ignored)."""
    allowed_domains: list[str] = Field(default_factory=list)
    """Hosts the crawl may visit (subdomains included); empty: the hosts of the URLs above."""
    selectors: Selectors = Field(default_factory=Selectors)
    structured_data: bool = True
    """Read schema.org JSON-LD and microdata; switch off for sites whose markup is wrong."""
    product_url_pattern: str | None = None
    """Regex: links matching it are product pages (not followed further)."""
    deny_url_patterns: list[str] = Field(default_factory=list)
    """Regexes of URLs never to request (faceted filters, sort orders, ...)."""
    follow_links_from_products: bool = False
    """Also follow links found on product pages (related products); off: listings only."""
    category_map: dict[str, str] = Field(default_factory=dict)
    """Shop label -> catalog category, matched case-insensitively, most specific label
    first. With a map, unmapped products get no category; without one, the shop's own most
    specific label (lower-cased) is used. It renames labels; it says nothing about which
    garment a category is (``garment_map`` does)."""
    garment_map: dict[str, str] = Field(default_factory=dict)
    """Catalog category (after ``category_map``) -> :mod:`shared.taxonomy` garment class: pins
    the garment class of a category without renaming it. Categories not in it are read by
    name, else by the garment classifier's votes on their crops (``lookalike sources show``
    lists each category's class and how it was decided). Matched case-insensitively."""
    default_currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    crawl_interval: Duration = timedelta(hours=6)
    max_pages: int = Field(default=100_000, ge=1)
    max_images_per_product: int = Field(default=20, ge=1, le=200)
    deactivate_after_missed_runs: int = Field(default=3, ge=1)
    """A product missing from this many complete crawls in a row becomes inactive."""
    allow_private_hosts: list[str] = Field(default_factory=list)
    """``host:port`` pairs allowed past the refusal of loopback/private/reserved addresses,
    for pages and images (the demo shop registers exactly its own, ``127.0.0.1:8001``)."""
    allow_private_addresses: bool = False
    """Allow every loopback/private/reserved address (an internal site; prefer
    ``allow_private_hosts``)."""
    demo: bool = False
    """The generated demo shop: crawled without delays unless ``politeness`` says otherwise."""
    politeness: Politeness = Field(default_factory=Politeness)
    feed_url: str | None = None
    """A product feed to read instead of crawling pages: Shopify ``products.json`` (paged with
    ``?limit=250&page=N``), or a Google Merchant feed (RSS/Atom XML or TSV/CSV, gzip allowed)."""
    format: Literal["auto", "shopify", "merchant-xml", "merchant-tsv"] = "auto"
    """The feed's format; ``auto`` detects it from the content."""
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    """The feed's currency: required for Shopify (whose feed carries none); for a Merchant
    feed, the currency of prices that name none."""
    max_feed_bytes: int = Field(default=2 * 1024**3, ge=1024)
    """A feed larger than this (after gunzipping) fails its run."""

    @field_validator("start_urls", "sitemap_urls", "feed_url")
    @classmethod
    def _http_urls(cls, urls: list[str] | str | None) -> list[str] | str | None:
        for url in [urls] if isinstance(urls, str) else urls or []:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(f"{url!r} is not an absolute http(s) URL")
        return urls

    @field_validator("allow_private_hosts")
    @classmethod
    def _host_ports(cls, hosts: list[str]) -> list[str]:
        return [host_port(host) for host in hosts]

    @field_validator("allowed_domains")
    @classmethod
    def _bare_hosts(cls, domains: list[str]) -> list[str]:
        cleaned = []
        for domain in domains:
            host = urlsplit(domain).hostname if "//" in domain else domain.split(":")[0]
            if not host:
                raise ValueError(f"{domain!r} is not a host name")
            cleaned.append(host.lower().strip("."))
        return cleaned

    @field_validator("product_url_pattern", "deny_url_patterns")
    @classmethod
    def _regexes(cls, value: str | list[str] | None) -> str | list[str] | None:
        for pattern in [value] if isinstance(value, str) else value or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return value

    @field_validator("default_currency", "currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("category_map")
    @classmethod
    def _category_values(cls, mapping: dict[str, str]) -> dict[str, str]:
        for label, category in mapping.items():
            if not label.strip() or not category.strip() or len(category) > 100:
                raise ValueError(f"bad category mapping {label!r} -> {category!r}")
        return mapping

    @field_validator("garment_map")
    @classmethod
    def _garment_classes(cls, mapping: dict[str, str]) -> dict[str, str]:
        """Every value a taxonomy class (any spelling it reads), stored as the class name."""
        pinned: dict[str, str] = {}
        for category, garment in mapping.items():
            if not category.strip() or len(category) > 100:
                raise ValueError(f"bad garment_map category {category!r}")
            try:
                pinned[category.strip()] = class_named(garment).name
            except ValueError as exc:
                raise ValueError(f"garment_map {category!r}: {exc}") from exc
        return pinned

    @model_validator(mode="before")
    @classmethod
    def _feed_defaults(cls, data: Any) -> Any:
        """A feed lists the whole catalog: a product gone from it is gone (one run, not 3)."""
        if isinstance(data, dict) and data.get("feed_url"):
            return {"deactivate_after_missed_runs": 1, **data}
        return data

    @model_validator(mode="after")
    def _feed_config(self) -> Self:
        if self.feed_url is None:
            if self.format != "auto" or self.currency is not None:
                raise ValueError("format and currency belong to a feed source (feed_url)")
            return self
        if self.start_urls or self.sitemap_urls:
            raise ValueError("a feed source (feed_url) has no start_urls or sitemap_urls")
        shopify = self.format == "shopify" or (
            self.format == "auto" and urlsplit(self.feed_url).path.endswith("/products.json")
        )
        if shopify and self.currency is None:
            raise ValueError(
                "a Shopify feed carries no currency: name the shop's currency "
                "(currency: EUR) beside feed_url"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _demo_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("demo"):
            given = data.get("politeness") or {}
            if isinstance(given, dict):
                fast = FAST_LOCAL_POLITENESS.model_dump(exclude_unset=True)
                return {**data, "politeness": {**fast, **given}}
        return data

    def seed_hosts(self, base_url: str | None = None) -> list[str]:
        feed = [self.feed_url] if self.feed_url else []
        urls = [*self.start_urls, *self.sitemap_urls, *feed, *([base_url] if base_url else [])]
        hosts = (urlsplit(url).hostname for url in urls)
        return list(dict.fromkeys(host.lower() for host in hosts if host))

    def domains(self, base_url: str | None = None) -> list[str]:
        return self.allowed_domains or self.seed_hosts(base_url)

    @classmethod
    def of(cls, source: SourceOut) -> SourceConfig:
        """The validated config of a stored source; a clear error when it is not valid."""
        try:
            config = cls.model_validate(source.config)
        except ValidationError as exc:
            raise ConfigurationError(
                f"source {source.name!r} has an invalid config: {_errors(exc)}"
            ) from exc
        if not config.start_urls and not config.sitemap_urls and not config.feed_url:
            # Stored sources always have a base URL: crawl from its home page.
            config = config.model_copy(update={"start_urls": [source.base_url]})
        return config

    def to_json(self) -> dict[str, Any]:
        """What goes into ``sources.config`` (defaults left out so they can evolve)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class SourceDefinition(_Model):
    """One entry of a sources YAML file."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base_url: str | None = None
    enabled: bool = True
    config: SourceConfig

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        """Config keys may sit beside ``name`` (the friendly YAML) or under ``config``."""
        if not isinstance(data, dict) or "config" in data:
            return data
        top = {key: data[key] for key in ("name", "base_url", "enabled") if key in data}
        rest = {key: value for key, value in data.items() if key not in top}
        return {**top, "config": rest}

    @property
    def garment_map(self) -> dict[str, str]:
        """The config's ``garment_map``: category -> pinned garment class."""
        return self.config.garment_map

    @model_validator(mode="after")
    def _has_seeds(self) -> Self:
        config = self.config
        if not (self.base_url or config.start_urls or config.sitemap_urls or config.feed_url):
            raise ValueError(
                f"source {self.name!r} needs base_url, start_urls, sitemap_urls or feed_url"
            )
        return self

    def to_source_in(self) -> SourceIn:
        config = self.config
        seeds = [*config.start_urls, *config.sitemap_urls, config.feed_url]
        base_url = self.base_url or _origin(next(url for url in seeds if url))
        return SourceIn(
            name=self.name, base_url=base_url, config=self.config.to_json(), enabled=self.enabled
        )


class SourcesFile(_Model):
    sources: list[SourceDefinition] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _unique(cls, sources: list[SourceDefinition]) -> list[SourceDefinition]:
        names = [source.name for source in sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate source names: {', '.join(duplicates)}")
        return sources


def load_sources_file(path: Path) -> list[SourceDefinition]:
    """Parse and validate a sources YAML file (a ``sources:`` list, or a bare list)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {exc}") from exc
    if isinstance(data, list):
        data = {"sources": data}
    try:
        return SourcesFile.model_validate(data).sources
    except ValidationError as exc:
        raise InvalidInputError(f"{path}: {_errors(exc, _names(data))}") from exc


def _names(data: Any) -> dict[int, str]:
    """The name of each source entry, by position (for errors that name the source)."""
    entries = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return {}
    return {
        index: str(entry["name"])
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def _errors(exc: ValidationError, names: dict[int, str] | None = None) -> str:
    """Pydantic's errors on one line; ``sources.0`` reads ``sources.0 (NAME)`` with ``names``."""
    parts = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if names and len(loc) > 1 and loc[0] == "sources" and error["loc"][1] in names:
            loc[1] = f"{loc[1]} ({names[int(error['loc'][1])]})"
        parts.append(f"{'.'.join(loc) or 'config'}: {error['msg']}")
    return "; ".join(parts)
