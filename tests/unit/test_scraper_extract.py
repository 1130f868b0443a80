"""Reading products out of saved pages, offline: JSON-LD in its many shapes, microdata,
selectors, and broken input."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from parsel import Selector as Page

from services.demo_shop import DemoCatalog
from services.demo_shop.pages import product_page
from services.scraper.extract import (
    loads_lenient,
    main_product,
    microdata_items,
    product_fields,
    read_structured_data,
    select,
)
from services.scraper.schemas import Selector

pytestmark = pytest.mark.unit

BASE = "https://shop.example"


def page(*scripts: str, body: str = "") -> Page:
    blocks = "".join(f'<script type="application/ld+json">{s}</script>' for s in scripts)
    return Page(text=f"<html><head>{blocks}</head><body>{body}</body></html>")


def ld(data: Any) -> str:
    return json.dumps(data)


PRODUCT = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Blue Linen Shirt",
    "sku": "SH-1",
    "brand": {"@type": "Brand", "name": "Koru"},
    "category": "Women > Tops > Shirts",
    "image": ["/img/1.jpg", "//cdn.shop.example/img/2.jpg"],
    "url": f"{BASE}/p/shirt",
    "color": "blue",
    "offers": {
        "@type": "Offer",
        "price": "49.90",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/InStock",
    },
}


def test_demo_shop_product_page_gives_every_field() -> None:
    product = DemoCatalog.generate(3, seed=1).products[0]
    html = product_page("http://127.0.0.1:8001", product)
    data = read_structured_data(Page(text=html))
    assert not data.errors
    node = main_product(data.products, [f"http://127.0.0.1:8001/product/{product.slug}"])
    assert node is not None
    fields = product_fields(node)
    assert fields["title"] == product.title
    assert fields["brand"] == product.brand
    assert Decimal(fields["price"]) == product.price
    assert fields["currency"] == "EUR"
    assert fields["category_labels"] == [product.category]
    assert fields["sku"] == product.sku
    assert fields["availability"] == product.availability
    assert len(fields["image_urls"]) == len(product.views)
    assert fields["attributes"]["color"] == product.colour
    assert fields["attributes"]["gtin"] == [product.gtin]


def test_single_product_object() -> None:
    data = read_structured_data(page(ld(PRODUCT)))
    fields = product_fields(main_product(data.products, [f"{BASE}/p/shirt"]) or {})
    assert fields["title"] == "Blue Linen Shirt"
    assert fields["brand"] == "Koru"
    assert fields["price"] == "49.90"
    assert fields["category_labels"] == ["Women", "Tops", "Shirts"]
    assert fields["image_urls"] == ["/img/1.jpg", "//cdn.shop.example/img/2.jpg"]
    assert fields["canonical_url"] == f"{BASE}/p/shirt"


def test_gtins_and_mpns_of_the_product_its_offers_and_its_variants() -> None:
    node = {
        **PRODUCT,
        "gtin13": "4006381333931",
        "mpn": "SH-1-BLUE",
        "offers": [
            {**PRODUCT["offers"], "gtin": 36000291452},
            {**PRODUCT["offers"], "gtin13": "4006381333931"},
        ],
        "hasVariant": [{"@type": "Product", "gtin14": "00012345678905", "mpn": "SH-1-BLUE"}],
    }
    fields = product_fields(node)
    assert fields["attributes"]["gtin"] == ["4006381333931", "36000291452", "00012345678905"]
    assert fields["attributes"]["mpn"] == ["SH-1-BLUE"]
    assert "gtin" not in product_fields(PRODUCT)["attributes"]


def test_top_level_list_and_graph_and_main_entity() -> None:
    breadcrumb = {
        "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": 2, "name": "Dresses"},
            {"@type": "ListItem", "position": 1, "name": "Home"},
        ],
    }
    as_list = read_structured_data(page(ld([{"@type": "Organization", "name": "X"}, PRODUCT])))
    assert len(as_list.products) == 1
    graph = {"@context": "https://schema.org", "@graph": [breadcrumb, PRODUCT]}
    in_graph = read_structured_data(page(ld(graph)))
    assert len(in_graph.products) == 1
    assert in_graph.breadcrumbs == ["Dresses"]
    item_page = {"@type": "ItemPage", "mainEntity": PRODUCT}
    assert len(read_structured_data(page(ld(item_page))).products) == 1


def test_schema_type_spellings() -> None:
    for spelled in ("http://schema.org/Product", "schema:Product", ["Product", "Thing"]):
        node = {**PRODUCT, "@type": spelled}
        assert len(read_structured_data(page(ld(node))).products) == 1


def test_invalid_json_is_an_error_not_a_crash_and_other_scripts_still_count() -> None:
    data = read_structured_data(page('{"@type": "Product", "name": ', ld(PRODUCT)))
    assert len(data.errors) == 1
    assert "invalid JSON-LD" in data.errors[0]
    assert len(data.products) == 1


def test_lenient_json_repairs_what_shops_write() -> None:
    assert loads_lenient('<!-- {"a": 1,} -->') == {"a": 1}
    assert loads_lenient('{"a": "line\nbreak"}') == {"a": "line\nbreak"}
    assert loads_lenient('{"a": 1}\n{"b": 2}') == [{"a": 1}, {"b": 2}]
    assert loads_lenient('{"price": 12.50}') == {"price": Decimal("12.50")}
    with pytest.raises(ValueError):
        loads_lenient("{not json at all")
    with pytest.raises(ValueError):
        loads_lenient("   ")


def test_multiple_offers_pick_the_first_in_stock_priced_one() -> None:
    offers = [
        {"@type": "Offer", "priceCurrency": "EUR", "availability": "InStock"},
        {"@type": "Offer", "price": 80, "priceCurrency": "EUR", "availability": "OutOfStock"},
        {"@type": "Offer", "price": "75.00", "priceCurrency": "EUR", "availability": "InStock"},
    ]
    fields = product_fields({**PRODUCT, "offers": offers})
    assert (fields["price"], fields["availability"]) == ("75.00", "InStock")
    only_out = product_fields({**PRODUCT, "offers": offers[:2]})
    assert (only_out["price"], only_out["availability"]) == (80, "OutOfStock")


def test_aggregate_offer_price_specification_and_product_group() -> None:
    aggregate = {"@type": "AggregateOffer", "lowPrice": "19.99", "priceCurrency": "GBP"}
    assert product_fields({**PRODUCT, "offers": aggregate})["price"] == "19.99"
    spec = {"@type": "Offer", "priceSpecification": {"price": 5, "priceCurrency": "USD"}}
    assert (product_fields({**PRODUCT, "offers": spec})["currency"]) == "USD"
    group = {
        "@type": "ProductGroup",
        "name": "Tee",
        "hasVariant": [{"@type": "Product", "offers": {"price": "9.00", "priceCurrency": "EUR"}}],
    }
    assert product_fields(group)["price"] == "9.00"


def test_odd_shapes_are_skipped_fields_not_crashes() -> None:
    weird = {
        "@type": "Product",
        "name": ["First name", "Second"],
        "brand": [{"name": "Acme"}],
        "image": [{"@type": "ImageObject", "contentUrl": "a.jpg"}, {"url": "b.jpg"}, 7, None],
        "offers": ["not an offer", {"price": {"nested": True}}],
        "category": {"name": "Hats"},
        "sku": 12345,
    }
    fields = product_fields(weird)
    assert fields["title"] == "First name"
    assert fields["brand"] == "Acme"
    assert fields["image_urls"] == ["a.jpg", "b.jpg"]
    assert fields["price"] is None
    assert fields["category_labels"] == ["Hats"]
    assert fields["sku"] == "12345"
    assert product_fields({"@type": "Product"})["title"] is None


def test_several_unrelated_products_make_no_main_product() -> None:
    listing = [{**PRODUCT, "url": f"{BASE}/p/{n}", "name": f"P{n}"} for n in range(3)]
    data = read_structured_data(page(ld(listing)))
    assert main_product(data.products, [f"{BASE}/category/tops"]) is None
    assert main_product(data.products, [f"{BASE}/p/1"]) == listing[1]
    relative = {**PRODUCT, "url": "/p/2"}
    assert main_product([listing[0], relative], [f"{BASE}/p/2"]) == relative


def test_microdata_product() -> None:
    body = """
    <div itemscope itemtype="https://schema.org/Product">
      <h1 itemprop="name">Wool Coat</h1>
      <img itemprop="image" src="/coat.jpg">
      <span itemprop="brand" itemscope itemtype="https://schema.org/Brand">
        <span itemprop="name">Halden</span></span>
      <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
        <meta itemprop="priceCurrency" content="EUR">
        <span itemprop="price" content="199.00">199,00 €</span>
        <link itemprop="availability" href="https://schema.org/LimitedAvailability">
      </div>
      <div itemscope itemtype="https://schema.org/Review"><span itemprop="name">x</span></div>
    </div>"""
    items = microdata_items(Page(text=f"<html><body>{body}</body></html>"))
    assert len(items) == 2  # the product and the stray review
    data = read_structured_data(page(body=body))
    assert len(data.products) == 1
    fields = product_fields(data.products[0])
    assert fields["title"] == "Wool Coat"
    assert fields["brand"] == "Halden"
    assert (fields["price"], fields["currency"]) == ("199.00", "EUR")
    assert fields["availability"] == "LimitedAvailability"
    assert fields["image_urls"] == ["/coat.jpg"]


def test_malformed_html_still_parses() -> None:
    broken = (
        '<html><head><script type="application/ld+json">'
        + ld(PRODUCT)
        + "</script><body><div><p>unclosed <b>tags <img src=x.jpg"
    )
    data = read_structured_data(Page(text=broken))
    assert len(data.products) == 1
    assert read_structured_data(Page(text="\x00\x01 not html")).products == []
    assert read_structured_data(Page(text="")).products == []


def test_selectors_css_xpath_text_and_attributes() -> None:
    html = Page(
        text="""<html><body><h1 class="t"> Green   Dress </h1>
        <p class="price"><span class="amount">1.299,00</span> <span>EUR</span></p>
        <img class="g" src="/a.jpg"><img class="g" data-src="/b.jpg">
        <a class="p" href="/p/1">one</a></body></html>"""
    )
    assert select(html, Selector.model_validate("h1.t")) == ["Green Dress"]
    assert select(html, Selector.model_validate("h1.t::text")) == ["Green Dress"]
    assert select(html, Selector.model_validate("//p[@class='price']")) == ["1.299,00 EUR"]
    images = select(html, Selector.model_validate("img.g"), element_attribute="src")
    assert images == ["/a.jpg", "/b.jpg"]
    assert select(html, Selector.model_validate("a.p::attr(href)")) == ["/p/1"]
    assert select(html, Selector.model_validate("span.missing")) == []
