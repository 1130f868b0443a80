"""Reading products out of HTML: schema.org JSON-LD and microdata, and configured selectors.

Pure functions over a :class:`parsel.Selector`, testable offline from saved pages. Broken
input never raises: invalid JSON-LD is reported in :attr:`StructuredData.errors` and skipped,
odd shapes (lists, ``@graph``, nested offers, ``ProductGroup`` variants) are walked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

from lxml import etree
from parsel import Selector as Page

from services.scraper.normalize import clean_text, normalize_availability, split_labels
from services.scraper.schemas import Selector

PRODUCT_TYPES = frozenset({"Product", "ProductGroup", "ProductModel", "IndividualProduct"})
MAX_DESCRIPTION = 1000

_JSON_LD_XPATH = "//script[contains(translate(@type, 'LDJSON', 'ldjson'), 'ld+json')]/text()"
_HTML_COMMENT = re.compile(r"<!--|-->|//\s*<!\[CDATA\[|//\s*\]\]>|<!\[CDATA\[|\]\]>")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SCHEMA_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?schema\.org/|^schema:", re.IGNORECASE)
_MICRODATA_URL_TAGS = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "audio": "src",
    "video": "src",
    "source": "src",
    "embed": "src",
    "iframe": "src",
    "track": "src",
    "object": "data",
}


@dataclass
class StructuredData:
    """Every schema.org node a page carries, and what could not be read."""

    products: list[dict[str, Any]] = field(default_factory=list)
    """Top-level product nodes (JSON-LD first, then microdata); nested ones are left out."""
    breadcrumbs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)
    """``id(product node) -> "json-ld" | "microdata"``."""


def read_structured_data(
    page: Page, *, json_ld: bool = True, microdata: bool = True
) -> StructuredData:
    data = StructuredData()
    nodes: list[dict[str, Any]] = []
    if json_ld:
        for index, text in enumerate(page.xpath(_JSON_LD_XPATH).getall()):
            try:
                document = loads_lenient(text)
            except ValueError as exc:
                data.errors.append(f"invalid JSON-LD in script #{index + 1}: {exc}")
                continue
            for node in top_level_nodes(document):
                nodes.append(node)
                data.sources[id(node)] = "json-ld"
    if microdata:
        for node in microdata_items(page):
            nodes.append(node)
            data.sources[id(node)] = "microdata"
    for node in nodes:
        if has_type(node, PRODUCT_TYPES):
            data.products.append(node)
        elif has_type(node, {"BreadcrumbList"}) and not data.breadcrumbs:
            data.breadcrumbs = breadcrumb_labels(node)
    return data


def loads_lenient(text: str) -> Any:
    """JSON as shops write it: HTML comments and CDATA markers, trailing commas, raw
    newlines inside strings, several documents in one script. ``ValueError`` if hopeless."""
    text = text.strip().rstrip(";")
    if not text:
        raise ValueError("empty script")
    try:
        return json.loads(text, strict=False, parse_float=Decimal)
    except ValueError:
        pass
    cleaned = _TRAILING_COMMA.sub(r"\1", _HTML_COMMENT.sub("", text)).strip().rstrip(";")
    decoder = json.JSONDecoder(strict=False, parse_float=Decimal)
    documents: list[Any] = []
    position = 0
    while position < len(cleaned):
        try:
            document, end = decoder.raw_decode(cleaned, position)
        except ValueError as exc:
            raise ValueError(f"{exc.args[0] if exc.args else exc}") from None
        documents.append(document)
        position = end
        while position < len(cleaned) and cleaned[position] in " \t\r\n,;":
            position += 1
    return documents[0] if len(documents) == 1 else documents


def top_level_nodes(document: Any) -> Iterator[dict[str, Any]]:
    """The nodes of a JSON-LD document: lists flattened, ``@graph`` expanded."""
    if isinstance(document, list):
        for entry in document:
            yield from top_level_nodes(entry)
    elif isinstance(document, dict):
        graph = document.get("@graph")
        if isinstance(graph, list | dict):
            yield from top_level_nodes(graph)
        if "@type" in document:
            yield document
            # A WebPage/ItemPage about a product: {"@type": "ItemPage", "mainEntity": {...}}
            entity = document.get("mainEntity")
            if isinstance(entity, list | dict):
                yield from top_level_nodes(entity)


def type_names(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {_SCHEMA_PREFIX.sub("", value) for value in values if isinstance(value, str)}


def has_type(node: object, names: set[str] | frozenset[str]) -> bool:
    return isinstance(node, dict) and bool(type_names(node) & names)


def breadcrumb_labels(node: dict[str, Any]) -> list[str]:
    elements = [e for e in _as_list(node.get("itemListElement")) if isinstance(e, dict)]
    elements.sort(key=lambda e: _position(e.get("position")))
    names = []
    for element in elements:
        item = element.get("item")
        name = element.get("name") or (item.get("name") if isinstance(item, dict) else None)
        if (text := clean_text(name)) is not None:
            names.append(text)
    if names and names[0].lower() in {"home", "start", "homepage", "shop"}:
        names = names[1:]
    return names


def _position(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return float("inf")


def main_product(products: list[dict[str, Any]], page_urls: Iterable[str]) -> dict[str, Any] | None:
    """The product a page is about: the one whose ``url`` is the page's, else the only one.
    Several unrelated products (a listing's JSON-LD) make the page not a product page.
    ``page_urls``: the page's URL and its canonical URL, absolute."""
    if not products:
        return None
    urls = [url for url in page_urls if url]
    wanted = {_comparable(url) for url in urls}
    for product in products:
        url = _first_url(product.get("url")) or _first_url(product.get("@id"))
        if url and urls and _comparable(urljoin(urls[0], url)) in wanted:
            return product
    distinct = {json.dumps(p, sort_keys=True, default=str) for p in products}
    return products[0] if len(distinct) == 1 else None


def _comparable(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/").lower()


def product_fields(node: dict[str, Any]) -> dict[str, Any]:
    """Raw :class:`~services.scraper.items.ProductItem` fields from a schema.org product."""
    offer = best_offer(node)
    price, currency = _offer_price(offer) if offer else (None, None)
    attributes: dict[str, Any] = {
        key: text
        for key in ("color", "pattern", "material", "size", "gender")
        if (text := clean_text(_first_name(node.get(key)), max_length=200))
    }
    if description := clean_text(node.get("description"), max_length=MAX_DESCRIPTION):
        attributes["description"] = description
    attributes.update(trade_codes(node))
    return {
        "canonical_url": _first_url(node.get("url")) or _first_url(node.get("@id")),
        "title": clean_text(_first_name(node.get("name")), max_length=1000),
        "brand": clean_text(
            _first_name(node.get("brand")) or _first_name(node.get("manufacturer")),
            max_length=200,
        ),
        "price": price,
        "currency": currency,
        "category_labels": split_labels(_names(node.get("category"))),
        "image_urls": image_urls(node.get("image")),
        "sku": _sku(node),
        "availability": normalize_availability(offer.get("availability")) if offer else None,
        "attributes": attributes,
    }


def offers_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    """All offers of a product: ``offers`` (one, a list, or an ``AggregateOffer`` with its
    own ``offers``), else those of a ``ProductGroup``'s variants."""
    found: list[dict[str, Any]] = []
    for offer in _as_list(node.get("offers")):
        if not isinstance(offer, dict):
            continue
        found.append(offer)
        found.extend(o for o in _as_list(offer.get("offers")) if isinstance(o, dict))
    if not found:
        for variant in _as_list(node.get("hasVariant")):
            if isinstance(variant, dict):
                found.extend(o for o in _as_list(variant.get("offers")) if isinstance(o, dict))
    return found


def best_offer(node: dict[str, Any]) -> dict[str, Any] | None:
    """The offer to show: the first in stock with a price, else the first with a price."""
    offers = offers_of(node)
    priced = [offer for offer in offers if _offer_price(offer)[0] is not None]
    for offer in priced:
        if normalize_availability(offer.get("availability")) in {None, "InStock"}:
            return offer
    if priced:
        return priced[0]
    return offers[0] if offers else None


def _offer_price(offer: dict[str, Any]) -> tuple[Any, str | None]:
    price = _scalar(offer.get("price"))
    if price is None:
        price = _scalar(offer.get("lowPrice"))
    currency = _scalar(offer.get("priceCurrency"))
    for spec in _as_list(offer.get("priceSpecification")):
        if not isinstance(spec, dict):
            continue
        if price is None:
            price = _scalar(spec.get("price"))
        if currency is None:
            currency = _scalar(spec.get("priceCurrency"))
    return price, (str(currency) if currency is not None else None)


def image_urls(value: object) -> list[str]:
    """Image URLs from a string, an ``ImageObject`` (``url``/``contentUrl``) or a list."""
    urls: list[str] = []
    for entry in _as_list(value):
        if isinstance(entry, dict):
            entry = entry.get("contentUrl") or entry.get("url") or entry.get("@id")
        for candidate in _as_list(entry):
            if isinstance(candidate, str) and candidate.strip():
                urls.append(candidate.strip())
    return urls


GTIN_KEYS = ("gtin", "gtin8", "gtin12", "gtin13", "gtin14")


def trade_codes(node: dict[str, Any]) -> dict[str, list[str]]:
    """The GTINs and MPNs of a product, of its offers and of its variants (a
    ``ProductGroup``'s ``hasVariant``): ``{"gtin": [...], "mpn": [...]}``, as given (checked
    when the catalog stores them, :mod:`shared.product_codes`)."""
    nodes = [node, *offers_of(node)]
    nodes += [v for v in _as_list(node.get("hasVariant")) if isinstance(v, dict)]
    found: dict[str, list[str]] = {}
    for part in nodes:
        for name, keys in (("gtin", GTIN_KEYS), ("mpn", ("mpn",))):
            for key in keys:
                text = clean_text(_scalar(part.get(key)), max_length=200)
                if text is not None and text not in found.get(name, []):
                    found.setdefault(name, []).append(text)
    return found


def _sku(node: dict[str, Any]) -> str | None:
    for key in ("sku", "mpn", "gtin13", "gtin14", "gtin12", "gtin8", "gtin", "productID"):
        if (text := clean_text(_scalar(node.get(key)), max_length=200)) is not None:
            return text
    return None


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _scalar(value: object) -> Any:
    """The first plain value of ``value`` (lists and ``{"@value": ...}`` unwrapped)."""
    for entry in _as_list(value):
        if isinstance(entry, dict):
            entry = entry.get("@value")
        if isinstance(entry, str | int | float | Decimal) and not isinstance(entry, bool):
            return entry
    return None


def _first_name(value: object) -> Any:
    names = _names(value)
    return names[0] if names else None


def _names(value: object) -> list[str]:
    names = []
    for entry in _as_list(value):
        if isinstance(entry, dict):
            entry = entry.get("name") or entry.get("@value")
        if isinstance(entry, str | int | Decimal) and not isinstance(entry, bool):
            names.append(str(entry))
    return names


def _first_url(value: object) -> str | None:
    for entry in _as_list(value):
        if isinstance(entry, dict):
            entry = entry.get("url") or entry.get("@id")
        if isinstance(entry, str) and entry.strip() and not entry.startswith("_:"):
            return entry.strip()
    return None


# -- microdata ------------------------------------------------------------------------------


def microdata_items(page: Page) -> list[dict[str, Any]]:
    """Top-level schema.org microdata items as JSON-LD-like dicts (``@type`` + properties)."""
    root = page.root
    if not isinstance(root, etree._Element):
        return []
    items = []
    # Top-level items are those that are no other item's property (HTML microdata spec).
    for element in root.xpath("//*[@itemscope][not(@itemprop)]"):
        items.append(_microdata_item(element))
    return items


def _microdata_item(scope: etree._Element, depth: int = 0) -> dict[str, Any]:
    item: dict[str, Any] = {}
    types = (scope.get("itemtype") or "").split()
    if types:
        item["@type"] = types if len(types) > 1 else types[0]
    for element, names in _item_properties(scope):
        if element.get("itemscope") is not None:
            value: Any = _microdata_item(element, depth + 1) if depth < 8 else {}
        else:
            value = _property_value(element)
        for name in names:
            if name in item:
                existing = item[name]
                item[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                item[name] = value
    return item


def _item_properties(scope: etree._Element) -> Iterator[tuple[etree._Element, list[str]]]:
    """Elements with ``itemprop`` whose nearest enclosing ``itemscope`` is ``scope``."""
    stack = list(reversed(scope))
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str):
            continue
        prop = element.get("itemprop")
        if prop:
            names = [_SCHEMA_PREFIX.sub("", name) for name in prop.split()]
            yield element, names
        if element.get("itemscope") is None:
            stack.extend(reversed(element))


def _property_value(element: etree._Element) -> str:
    tag = str(element.tag).lower()
    if tag == "meta":
        return element.get("content") or ""
    if tag in _MICRODATA_URL_TAGS:
        return element.get(_MICRODATA_URL_TAGS[tag]) or ""
    if tag in {"data", "meter"}:
        return element.get("value") or ""
    if tag == "time":
        return element.get("datetime") or clean_text("".join(element.itertext())) or ""
    if element.get("content") is not None:  # RDFa-style content="" on any element
        return element.get("content") or ""
    return clean_text("".join(element.itertext())) or ""


# -- selectors ------------------------------------------------------------------------------


def select(page: Page, selector: Selector, *, element_attribute: str | None = None) -> list[str]:
    """Values a configured selector finds. Text nodes and attributes come as they are;
    whole elements give ``element_attribute`` when asked (``href``/``src``) else their text."""
    try:
        found = page.css(selector.css) if selector.css is not None else page.xpath(selector.query)
    except (ValueError, SyntaxError, etree.XPathError):
        return []
    values = []
    for node in found:
        root = node.root
        if isinstance(root, etree._Element):
            if element_attribute is not None:
                raw = root.get(element_attribute) or root.get(f"data-{element_attribute}")
            else:
                raw = "".join(root.itertext())
        else:
            raw = str(root)
        if (text := clean_text(raw)) is not None:
            values.append(text)
    return values
