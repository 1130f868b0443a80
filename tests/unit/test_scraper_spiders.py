"""Spider callbacks on saved responses, offline: sitemaps, robots.txt, selector listings."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse
from scrapy.utils.test import get_crawler

from services.scraper.items import ProductItem
from services.scraper.schemas import SourceConfig
from services.scraper.spiders import SourceSpider

pytestmark = pytest.mark.unit

SHOP = "https://shop.example"


def spider_for(**config: Any) -> tuple[SourceSpider, Crawler]:
    crawler = get_crawler(SourceSpider)
    spider = SourceSpider.from_crawler(
        crawler, SourceConfig.model_validate({"start_urls": [SHOP + "/"], **config})
    )
    crawler.spider = spider
    return spider, crawler


def urls(results: Any) -> list[str]:
    return [r.url for r in results if isinstance(r, Request)]


def xml(url: str, body: bytes) -> XmlResponse:
    return XmlResponse(url, body=body, request=Request(url))


URLSET = (
    b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    b"<url><loc>https://shop.example/p/1</loc></url>"
    b"<url><loc>/p/2</loc></url>"
    b"<url><loc>https://elsewhere.example/p/3</loc></url>"
    b"<url><loc>https://shop.example/about</loc></url>"
    b"</urlset>"
)


def test_seeds_include_robots_txt_for_sitemaps_unless_off() -> None:
    spider, _ = spider_for()
    assert [r.url for r in spider.seed_requests()] == [SHOP + "/", SHOP + "/robots.txt"]
    off, _ = spider_for(sitemaps="off")
    assert [r.url for r in off.seed_requests()] == [SHOP + "/"]
    only, _ = spider_for(sitemaps="only", sitemap_urls=[SHOP + "/sm.xml"])
    assert [r.url for r in only.seed_requests()] == [SHOP + "/sm.xml"]


def test_robots_txt_sitemaps_and_the_conventional_fallback() -> None:
    spider, _ = spider_for()
    robots = TextResponse(
        SHOP + "/robots.txt",
        body=b"User-agent: *\nDisallow: /cart\nSitemap: /sm.xml\nsitemap: https://x.example/s.xml\n",
    )
    assert urls(spider.parse_robots(robots)) == [SHOP + "/sm.xml"]
    bare = TextResponse(SHOP + "/robots.txt", body=b"User-agent: *\n")
    fresh, _ = spider_for()
    assert urls(fresh.parse_robots(bare)) == [SHOP + "/sitemap.xml"]


def test_urlsets_indexes_and_gzip() -> None:
    spider, crawler = spider_for(product_url_pattern=r"/p/\d+$")
    found = urls(spider.parse_sitemap(xml(SHOP + "/sm.xml", URLSET)))
    assert found == [SHOP + "/p/1", SHOP + "/p/2"]
    assert crawler.stats.get_value("lookalike/skipped/sitemap_url_unwanted") == 1

    index = (
        b"<sitemapindex><sitemap><loc>https://shop.example/a.xml.gz</loc></sitemap>"
        b"<sitemap><loc>https://shop.example/b.xml</loc></sitemap></sitemapindex>"
    )
    fresh, _ = spider_for()
    assert urls(fresh.parse_sitemap(xml(SHOP + "/index.xml", index))) == [
        SHOP + "/a.xml.gz",
        SHOP + "/b.xml",
    ]
    zipped = Response(SHOP + "/a.xml.gz", body=gzip.compress(URLSET), request=Request(SHOP))
    assert len(urls(fresh.parse_sitemap(zipped))) == 3  # no pattern: /about too


def test_broken_sitemaps_are_errors() -> None:
    spider, crawler = spider_for()
    html = HtmlResponse(SHOP + "/s.xml", body=b"<html>", request=Request(SHOP + "/s.xml"))
    assert list(spider.parse_sitemap(html)) == []
    corrupt = Response(SHOP + "/s.xml.gz", body=b"\x1f\x8b\x08garbage", request=Request(SHOP))
    assert list(spider.parse_sitemap(corrupt)) == []
    assert crawler.stats.get_value("lookalike/errors/invalid_sitemap") == 2


def test_selector_listing_follows_only_configured_links_once() -> None:
    spider, _ = spider_for(
        selectors={"product_links": "a.product::attr(href)", "pagination": "a.next"}
    )
    listing = HtmlResponse(
        SHOP + "/women?page=1",
        body=b'<a class="product" href="/p/1">1</a><a class="product" href="/p/1">again</a>'
        b'<a class="product" href="//shop.example/p/2">2</a><a href="/about">about</a>'
        b'<a class="product" href="https://elsewhere.example/p/9">x</a>'
        b'<a class="next" href="?page=2">next</a>',
        request=Request(SHOP + "/women?page=1"),
    )
    requests = [r for r in spider.parse(listing) if isinstance(r, Request)]
    assert [(r.url, r.callback.__name__) for r in requests] == [  # type: ignore[union-attr]
        (SHOP + "/p/1", "parse_product"),
        (SHOP + "/p/2", "parse_product"),
        (SHOP + "/women?page=2", "parse"),
    ]
    assert urls(spider.parse(listing)) == []  # everything already requested


def test_a_product_page_read_by_selectors_with_structured_data_filling_gaps() -> None:
    spider, _ = spider_for(selectors={"title": "h1::text", "price": ".price"})
    page = HtmlResponse(
        SHOP + "/p/1",
        body=b'<html><head><script type="application/ld+json">{"@type": "Product",'
        b' "name": "From JSON-LD", "brand": "Koru", "offers": {"price": "5"}}</script></head>'
        b'<body><h1>From selectors</h1><span class="price">12,50 \xe2\x82\xac</span></body></html>',
        encoding="utf-8",
        request=Request(SHOP + "/p/1"),
    )
    (item,) = [i for i in spider.parse_product(page) if isinstance(i, ProductItem)]
    assert (item.title, item.price, item.brand) == ("From selectors", "12,50 €", "Koru")
    assert item.extracted_from == "selectors+json-ld"
