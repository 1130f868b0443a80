"""Feed parsing offline: formats detected from content, variants grouped per colour, prices
read, and every kind of bad input a clear error or a reported, skipped item."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.scraper.feeds import (
    FeedContext,
    FeedFormat,
    FeedSink,
    FeedSpool,
    detect_format,
    merchant_products,
    shopify_page_url,
    shopify_products,
    with_variant,
)
from services.scraper.items import ProductItem
from services.scraper.schemas import SourceConfig, SourceDefinition, load_sources_file
from shared.errors import InvalidInputError

pytestmark = pytest.mark.unit

Problems = list[tuple[str, str | None, int | None]]


@pytest.fixture
def spool() -> Iterator[FeedSpool]:
    spool = FeedSpool()
    yield spool
    spool.close()


def read(
    spool: FeedSpool,
    body: bytes,
    *,
    chunk: int = 13,
    expected: FeedFormat | None = None,
    gzip_declared: bool = False,
    max_bytes: int = 10**9,
) -> tuple[FeedSink, Problems]:
    """Feed ``body`` in small chunks, as a download would."""
    problems: Problems = []
    sink = FeedSink(
        spool,
        1,
        lambda *problem: problems.append(problem),
        expected=expected,
        max_bytes=max_bytes,
    )
    sink.start(gzip_declared=gzip_declared)
    for start in range(0, len(body), chunk):
        sink.feed(body[start : start + chunk])
    sink.finish()
    return sink, problems


def items(spool: FeedSpool, fmt: FeedFormat, currency: str | None = None) -> list[ProductItem]:
    problems: Problems = []
    context = FeedContext("https://shop.example", currency, lambda *p: problems.append(p))
    found: list[ProductItem] = []
    for group in spool.groups():
        if fmt is FeedFormat.SHOPIFY:
            found += shopify_products(group[0], context)
        else:
            found += merchant_products(group, context)
    return found


def rss(*items: str, head: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{head}'
        '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        "<title>Shop</title>\n" + "\n".join(items) + "\n</channel></rss>\n"
    ).encode()


def item(**fields: str) -> str:
    parts = []
    for key, value in fields.items():
        if key in ("title", "link", "description"):
            parts.append(f"<{key}>{value}</{key}>")
        else:
            for one in value.split("|") if key == "additional_image_link" else [value]:
                parts.append(f"<g:{key}>{one}</g:{key}>")
    return f"<item>{''.join(parts)}</item>"


SHIRT_RED_M = item(
    id="S-RED-M",
    title="Oxford Shirt",
    link="https://shop.example/p/oxford",
    image_link="https://shop.example/img/red-1.jpg",
    additional_image_link="https://shop.example/img/red-2.jpg",
    price="1.299,00 EUR",
    color="Red",
    size="M",
    item_group_id="OX",
    brand="Acme",
    product_type="Apparel &gt; Tops &gt; Shirts",
    availability="in stock",
    gtin="0001",
)
SHIRT_RED_L = item(
    id="S-RED-L",
    title="Oxford Shirt",
    link="https://shop.example/p/oxford",
    image_link="https://shop.example/img/red-1.jpg",
    price="1,299.00 EUR",
    sale_price="999.00 EUR",
    color="Red",
    size="L",
    item_group_id="OX",
    availability="in stock",
)
SHIRT_BLUE_M = item(
    id="S-BLUE-M",
    title="Oxford Shirt",
    link="https://shop.example/p/oxford?color=blue",
    image_link="https://shop.example/img/blue-1.jpg",
    price="1299 EUR",
    color="Blue",
    size="M",
    item_group_id="OX",
    availability="out of stock",
)


def test_merchant_rss_variants_become_one_product_per_colour(spool: FeedSpool) -> None:
    sink, problems = read(spool, rss(SHIRT_RED_M, SHIRT_BLUE_M, SHIRT_RED_L))
    assert sink.error is None and sink.format is FeedFormat.MERCHANT_XML
    assert problems == []
    by_colour = {p.attributes["color"]: p for p in items(spool, FeedFormat.MERCHANT_XML)}
    assert set(by_colour) == {"Red", "Blue"}
    red, blue = by_colour["Red"], by_colour["Blue"]
    assert red.sku == "OX:red" and blue.sku == "OX:blue"
    # Red's sizes share one address; Blue has its own.
    assert red.url == "https://shop.example/p/oxford"
    assert blue.url == "https://shop.example/p/oxford?color=blue"
    assert red.image_urls == [
        "https://shop.example/img/red-1.jpg",
        "https://shop.example/img/red-2.jpg",
    ]
    assert blue.image_urls == ["https://shop.example/img/blue-1.jpg"]
    # The sale price of the L is the cheapest in-stock price; the price it replaces is kept.
    assert red.price == Decimal("999.00") and red.currency == "EUR"
    assert red.attributes["original_price"] == "1299.00"
    assert red.attributes["sizes"] == ["M", "L"]
    assert red.attributes["variant_ids"] == ["S-RED-L", "S-RED-M"]
    assert red.attributes["group_id"] == "OX"
    assert red.attributes["gtin"] == ["0001"]
    assert red.category_labels == ["Apparel", "Tops", "Shirts"]
    assert red.brand == "Acme" and red.available
    assert blue.price == Decimal("1299.00")
    assert not blue.available and blue.availability == "OutOfStock"


def test_colours_at_one_address_get_their_own_whatever_the_order(spool: FeedSpool) -> None:
    same_link = SHIRT_BLUE_M.replace("oxford?color=blue", "oxford")
    read(spool, rss(same_link, SHIRT_RED_M, SHIRT_RED_L))
    urls = {p.attributes["color"]: p.url for p in items(spool, FeedFormat.MERCHANT_XML)}
    assert urls == {
        "Red": "https://shop.example/p/oxford?variant=S-RED-L",
        "Blue": "https://shop.example/p/oxford?variant=S-BLUE-M",
    }


def test_merchant_atom_feed(spool: FeedSpool) -> None:
    body = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
        b'xmlns:g="http://base.google.com/ns/1.0"><title>Shop</title>'
        b'<entry><g:id>A1</g:id><title>Wool Coat</title><link href="https://shop.example/coat"/>'
        b"<g:image_link>https://shop.example/coat.jpg</g:image_link>"
        b"<g:price>89.90 GBP</g:price></entry></feed>"
    )
    sink, problems = read(spool, body)
    assert sink.error is None and problems == []
    (coat,) = items(spool, FeedFormat.MERCHANT_XML)
    assert (coat.title, coat.url, coat.sku) == ("Wool Coat", "https://shop.example/coat", "A1")
    assert (coat.price, coat.currency) == (Decimal("89.90"), "GBP")


@pytest.mark.parametrize("delimiter", ["\t", ","])
def test_merchant_tsv_and_csv(spool: FeedSpool, delimiter: str) -> None:
    rows = [
        ["id", "title", "link", "image_link", "additional_image_link", "price", "color"],
        [
            "T1",
            "Tee",
            "https://shop.example/t1",
            "https://shop.example/t1.jpg",
            "",
            "15.00 USD",
            "",
        ],
        [
            "T2",
            "Tee two",
            "https://shop.example/t2",
            "https://shop.example/t2.jpg",
            "https://shop.example/t2b.jpg,https://shop.example/t2c.jpg",
            "15.00",
            "Green",
        ],
    ]
    quote = '"' if delimiter == "," else ""
    text = "\n".join(
        delimiter.join(f"{quote}{cell}{quote}" for cell in row) for row in rows
    ).encode()
    sink, problems = read(spool, text)
    assert problems == []
    assert sink.error is None and sink.format is FeedFormat.MERCHANT_TSV
    found = {p.sku: p for p in items(spool, FeedFormat.MERCHANT_TSV, currency="USD")}
    assert found["T1"].price == Decimal("15.00") and found["T1"].currency == "USD"
    assert found["T2"].currency == "USD"  # the source's currency for a price naming none
    assert found["T2"].image_urls[1:] == [
        "https://shop.example/t2b.jpg",
        "https://shop.example/t2c.jpg",
    ]


def test_price_without_currency_is_reported_and_left_out(spool: FeedSpool) -> None:
    read(
        spool,
        rss(
            item(
                id="P",
                title="T",
                link="https://s.example/p",
                image_link="https://s.example/p.jpg",
                price="15,00",
            )
        ),
    )
    problems: Problems = []
    context = FeedContext("https://s.example", None, lambda *p: problems.append(p))
    (product,) = [p for group in spool.groups() for p in merchant_products(group, context)]
    assert product.price is None and product.currency is None
    assert problems == [("price without a currency", "P", 4)]


def test_items_without_id_image_link_and_duplicates_are_reported_and_skipped(
    spool: FeedSpool,
) -> None:
    good = dict(title="T", link="https://s.example/p", image_link="https://s.example/p.jpg")
    body = rss(
        item(id="A", **good),
        item(**good),
        item(id="B", title="T", link="https://s.example/b"),
        item(id="C", title="T", image_link="https://s.example/c.jpg"),
        item(id="A", **{**good, "title": "Second A"}),
    )
    sink, problems = read(spool, body)
    assert sink.error is None
    assert problems == [
        ("no id", None, 5),
        ("no image", "B", 6),
        ("no link", "C", 7),
        ("duplicate id", "A", 8),
    ]
    (kept,) = items(spool, FeedFormat.MERCHANT_XML)
    assert kept.title == "T"  # the first A wins


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
            b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>&lol2;</g:id>'
            b"</item></channel></rss>",
            "line 6: refused: the XML declares entities",
        ),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "http://127.0.0.1:1/evil.dtd">\n'
            b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>&ext;</g:id>'
            b"</item></channel></rss>",
            "line 3: an entity reference (&ext;): refused",
        ),
        (
            rss(item(id="A", title="T")).replace(b"</item>", b"</itm>"),
            "line 4: malformed XML: Opening and ending tag mismatch",
        ),
        (rss(item(id="A", title="T"))[:-30], "malformed XML"),
        (b"<!DOCTYPE html>\n<html><body>Welcome</body></html>", "an HTML page, not a product"),
        (b'<?xml version="1.0"?><urlset><url/></urlset>', "the XML root is <urlset>"),
        (b'<?xml version="1.0"?><rss><channel/></rss>', "no <item> or <entry> elements"),
        (b'{"products": [}', "line 1: invalid JSON"),
        (b'{"items": []}', 'JSON without a "products" list'),
        (b"sku;name\n1;x\n", "line 1: not a product feed"),
        (b"   \n", "the feed is empty"),
        (b'id\ttitle\n1\t"broken\n', "malformed TSV"),
    ],
)
def test_malformed_feeds_fail_with_line_and_reason(
    spool: FeedSpool, body: bytes, message: str
) -> None:
    sink, _ = read(spool, body)
    assert sink.error is not None
    assert message in str(sink.error)


def test_gzip_is_read_and_gzip_that_is_not_gzip_is_refused(spool: FeedSpool) -> None:
    body = rss(item(id="A", title="T", link="https://s/p", image_link="https://s/p.jpg"))
    sink, _ = read(spool, gzip.compress(body))
    assert sink.error is None and sink.records == 1
    sink, _ = read(spool, body, gzip_declared=True)
    assert str(sink.error) == "declared gzip but the body is not gzip"
    sink, _ = read(spool, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 50)
    assert "not valid gzip" in str(sink.error)
    sink, _ = read(spool, gzip.compress(body)[:-20])
    assert "ends early" in str(sink.error)


def test_a_feed_over_the_size_limit_fails(spool: FeedSpool) -> None:
    body = rss(*(item(id=str(n), title="T") for n in range(100)))
    sink, _ = read(spool, body, max_bytes=2048)
    assert "larger than 2,048 bytes" in str(sink.error)


def test_format_given_must_match_the_content(spool: FeedSpool) -> None:
    sink, _ = read(spool, b'{"products": []}', expected=FeedFormat.MERCHANT_XML)
    assert "the source says merchant-xml, but the content is shopify" in str(sink.error)


def test_detect_format_waits_for_enough_bytes() -> None:
    assert detect_format(b"id\ttit", final=False) is None
    assert detect_format(b"id\ttitle\n") is FeedFormat.MERCHANT_TSV
    assert detect_format(b"\xef\xbb\xbf  {") is FeedFormat.SHOPIFY


def shopify_product(**extra: Any) -> dict[str, Any]:
    return {
        "id": 42,
        "title": "Linen Dress",
        "handle": "linen-dress",
        "vendor": "Acme",
        "product_type": "Dresses",
        "body_html": "<p>Light <b>linen</b>.</p>",
        "options": [{"name": "Size", "position": 1}, {"name": "Colour", "position": 2}],
        "variants": [
            {
                "id": 1,
                "option1": "S",
                "option2": "Sand",
                "price": "59.00",
                "available": True,
                "compare_at_price": "79.00",
                "barcode": "111",
            },
            {"id": 2, "option1": "M", "option2": "Sand", "price": "59.00", "available": False},
            {"id": 3, "option1": "S", "option2": "Black", "price": "64.00", "available": False},
        ],
        "images": [
            {"id": 10, "src": "https://cdn.example/sand.jpg", "variant_ids": [1, 2]},
            {"id": 11, "src": "https://cdn.example/black.jpg", "variant_ids": [3]},
            {"id": 12, "src": "https://cdn.example/both.jpg", "variant_ids": []},
        ],
        **extra,
    }


def test_shopify_colour_variants_keep_their_own_images_and_colour(spool: FeedSpool) -> None:
    page = json.dumps({"products": [shopify_product()]}).encode()
    sink, problems = read(spool, page)
    assert sink.error is None and sink.format is FeedFormat.SHOPIFY and problems == []
    sand, black = items(spool, FeedFormat.SHOPIFY, currency="EUR")
    assert (sand.sku, black.sku) == ("42:sand", "42:black")
    assert sand.url == "https://shop.example/products/linen-dress?variant=1"
    assert black.url == "https://shop.example/products/linen-dress?variant=3"
    assert sand.image_urls == ["https://cdn.example/sand.jpg"]
    assert black.image_urls == ["https://cdn.example/black.jpg"]
    assert (sand.price, sand.currency, sand.brand) == (Decimal("59.00"), "EUR", "Acme")
    assert sand.attributes["original_price"] == "79.00"
    assert sand.attributes["color"] == "Sand" and sand.attributes["sizes"] == ["S", "M"]
    assert sand.attributes["description"] == "Light linen."
    assert sand.attributes["gtin"] == ["111"]
    assert sand.available and not black.available  # every Black variant is sold out
    assert sand.category_labels == ["Dresses"]


def test_shopify_products_without_id_or_image_and_duplicates(spool: FeedSpool) -> None:
    page = {
        "products": [
            shopify_product(),
            shopify_product(id=None),
            shopify_product(id=7, images=[]),
            shopify_product(title="again"),
        ]
    }
    sink, problems = read(spool, json.dumps(page).encode())
    assert sink.error is None and sink.seen == 4 and sink.records == 1
    assert [reason for reason, *_ in problems] == ["no id", "no image", "duplicate id"]


def test_shopify_page_urls_and_variant_urls() -> None:
    assert (
        shopify_page_url("https://s.example/products.json?limit=5&x=1", 3)
        == "https://s.example/products.json?x=1&limit=250&page=3"
    )
    assert with_variant("https://s.example/p?a=1", "9") == "https://s.example/p?a=1&variant=9"


def test_feed_source_config() -> None:
    config = SourceConfig.model_validate(
        {"feed_url": "https://s.example/feed.xml", "format": "merchant-xml"}
    )
    assert config.deactivate_after_missed_runs == 1  # gone from the feed: gone
    definition = SourceDefinition.model_validate(
        {"name": "s", "feed_url": "https://s.example/products.json", "currency": "eur"}
    )
    assert definition.to_source_in().base_url == "https://s.example/"
    assert definition.config.currency == "EUR"
    with pytest.raises(ValidationError, match="a Shopify feed carries no currency"):
        SourceConfig.model_validate({"feed_url": "https://s.example/products.json"})
    with pytest.raises(ValidationError, match="a Shopify feed carries no currency"):
        SourceConfig.model_validate({"feed_url": "https://s.example/all", "format": "shopify"})
    with pytest.raises(ValidationError, match="has no start_urls"):
        SourceConfig.model_validate(
            {"feed_url": "https://s.example/f.xml", "start_urls": ["https://s.example/"]}
        )
    with pytest.raises(ValidationError, match="not an absolute http"):
        SourceConfig.model_validate({"feed_url": "file:///etc/passwd"})


def test_a_sources_file_error_names_the_source(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("- name: acme\n  feed_url: https://acme.example/products.json\n")
    with pytest.raises(InvalidInputError, match=r"sources\.0 \(acme\)\.config: .*no currency"):
        load_sources_file(path)
