"""Normalisation of what shops write: prices, currencies, URLs, categories, availability."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.scraper.normalize import (
    absolute_url,
    canonical_url,
    map_category,
    normalize_availability,
    normalize_currency,
    parse_price,
    same_site,
    split_labels,
)

pytestmark = pytest.mark.unit

PAGE = "https://shop.example/women/tops/p1.html?color=red"


@pytest.mark.parametrize(
    ("raw", "amount", "currency"),
    [
        ("49.90", "49.90", None),
        (Decimal("12.5"), "12.50", None),
        (12, "12.00", None),
        (19.99, "19.99", None),
        ("1.234", "1.23", None),  # a plain number uses "." as the decimal mark (schema.org)
        ("1,234.56", "1234.56", None),
        ("1.234,56 €", "1234.56", "EUR"),
        ("€ 12", "12.00", "EUR"),
        ("12,99 EUR", "12.99", "EUR"),
        ("£1,299", "1299.00", "GBP"),
        ("CHF 1'299.-", "1299.00", "CHF"),
        ("US$ 5.5", "5.50", "USD"),
        ("12.345,6 kr", "12345.60", None),
        ("0,99", "0.99", None),
    ],
)
def test_prices(raw: object, amount: str, currency: str | None) -> None:
    assert parse_price(raw) == (Decimal(amount), currency)


@pytest.mark.parametrize(
    "raw", [None, "", "call us", "N/A", "-5.00", "NaN", "Infinity", "99999999999999", True, []]
)
def test_unusable_prices_give_none(raw: object) -> None:
    assert parse_price(raw)[0] is None


def test_currencies() -> None:
    assert normalize_currency("eur") == "EUR"
    assert normalize_currency("€") == "EUR"
    assert normalize_currency("Euro") is None
    assert normalize_currency(None) is None


def test_relative_and_protocol_relative_urls() -> None:
    assert absolute_url("p2.html", PAGE) == "https://shop.example/women/tops/p2.html"
    assert absolute_url("/img/a.jpg", PAGE) == "https://shop.example/img/a.jpg"
    assert absolute_url("//cdn.example/a.jpg", PAGE) == "https://cdn.example/a.jpg"
    assert absolute_url("  HTTPS://CDN.Example/A b.jpg#top ", PAGE) == (
        "https://cdn.example/A%20b.jpg"
    )
    for bad in ("data:image/png;base64,xx", "javascript:void(0)", "mailto:a@b", "http://[x", ""):
        assert absolute_url(bad, PAGE) is None
    assert absolute_url("/" + "x" * 3000, PAGE) is None


def test_canonical_urls_drop_tracking_and_default_ports() -> None:
    assert canonical_url("https://shop.example:443/p/1?utm_source=x&size=m&gclid=1", PAGE) == (
        "https://shop.example/p/1?size=m"
    )
    assert canonical_url("/p/1?b=2&a=1", PAGE) == "https://shop.example/p/1?b=2&a=1"
    assert canonical_url("http://127.0.0.1:8001/p/1", PAGE) == "http://127.0.0.1:8001/p/1"


def test_same_site() -> None:
    assert same_site("https://www.shop.example/x", ["shop.example"])
    assert same_site("http://127.0.0.1:9999/x", ["127.0.0.1"])
    assert not same_site("https://evilshop.example/x", ["shop.example"])


def test_category_labels_and_mapping() -> None:
    labels = split_labels(["Women > Clothing > T-Shirts & Tops", "Sale"])
    assert labels == ["Women", "Clothing", "T-Shirts & Tops", "Sale"]
    assert split_labels(["Tops / Shirts", "A/B"]) == ["Tops", "Shirts", "A/B"]
    mapping = {"t-shirts & tops": "tops", "Clothing": "other"}
    assert map_category(["Women", "Clothing", "T-Shirts & Tops"], mapping) == "tops"
    assert map_category(["Women", "Clothing"], mapping) == "other"
    assert map_category(["Women"], mapping) is None
    assert map_category(["Women", "Dresses"], {}) == "dresses"
    assert map_category([], {}) is None


def test_availability() -> None:
    assert normalize_availability("https://schema.org/InStock") == "InStock"
    assert normalize_availability("http://schema.org/out_of_stock") == "OutOfStock"
    assert normalize_availability("OutOfStock") == "OutOfStock"
    assert normalize_availability("Only a few left") == "LimitedAvailability"
    assert normalize_availability("Sold out") == "SoldOut"
    assert normalize_availability("Currently out of stock") == "OutOfStock"
    assert normalize_availability("In stock") == "InStock"
    assert normalize_availability("whatever") is None
