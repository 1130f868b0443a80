"""Product feeds, read as a stream: Shopify ``products.json`` pages and Google Merchant feeds
(RSS 2.0 or Atom XML in the ``g:`` namespace, or TSV/CSV with Merchant column names).

A :class:`FeedSink` takes one download's bytes as they arrive (gunzipping them, detecting the
format from the content) and parses them into records in a :class:`FeedSpool`, a temporary
SQLite file: a feed of any size is never held whole in memory, duplicate ids are caught by a
unique key, and the records of one product group come out together. XML is parsed by lxml's
pull parser with entities never expanded and no network access; a document that declares
entities is refused (an XML bomb). Nothing reaches the catalog until the whole feed has parsed:
:func:`shopify_products` and :func:`merchant_products` then turn each group into items.

How variants become products: one product per colour of a group (a Shopify product, or the
Merchant items sharing an ``item_group_id``), because a colour is what a photo can tell apart;
sizes of one colour are one product. Its identity is ``<group id>:<colour>`` (the group id
alone when the group has no colour), its ``attributes`` keep the colour, the group id, the
variant ids and sizes, so a colour variant keeps its own images and colour and its siblings can
be found by ``group_id``.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import json
import sqlite3
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lxml import etree
from lxml import html as lxml_html

from services.scraper.items import ProductItem
from services.scraper.normalize import (
    clean_text,
    normalize_availability,
    normalize_currency,
    parse_price,
    split_labels,
)

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
UNAVAILABLE = frozenset({"OutOfStock", "SoldOut", "Discontinued"})
"""Availabilities that make a feed product inactive until the shop sells it again."""
MAX_DESCRIPTION = 2000
_SNIFF_BYTES = 4096
_SPOOL_MEMORY = 8 * 1024 * 1024
_COLOUR_OPTIONS = frozenset({"color", "colour", "farbe", "couleur", "colore", "kleur"})


class FeedFormat(enum.StrEnum):
    SHOPIFY = "shopify"
    MERCHANT_XML = "merchant-xml"
    MERCHANT_TSV = "merchant-tsv"


class FeedError(Exception):
    """The feed cannot be read: the reason, and the line where it was found when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


Report = Callable[[str, str | None, int | None], None]
"""``report(reason, record id, line)``: an item skipped (no id, no image, duplicate id ...)."""


@dataclass(frozen=True)
class Record:
    id: str
    line: int | None
    data: dict[str, Any]


class FeedSpool:
    """The records of one feed run in a temporary SQLite file (deleted on :meth:`close`)."""

    def __init__(self, directory: Path | None = None) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="lookalike-feed-", suffix=".sqlite3", dir=directory, delete=False
        )
        handle.close()
        self.path = Path(handle.name)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
            "grp TEXT NOT NULL, page INTEGER NOT NULL, line INTEGER, data TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX records_grp ON records (grp, seq)")
        self._db.execute("BEGIN")

    def add(self, record_id: str, group: str, page: int, line: int | None, data: Any) -> bool:
        """Keep a record; False when one with the same id is already kept (the first wins)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO records (id, grp, page, line, data) VALUES (?, ?, ?, ?, ?)",
            (record_id, group, page, line, json.dumps(data, separators=(",", ":"))),
        )
        return cursor.rowcount == 1

    def has(self, record_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone()
        return row is not None

    def discard_page(self, page: int) -> None:
        """Forget what one download stored (it is being downloaded again)."""
        self._db.execute("DELETE FROM records WHERE page = ?", (page,))

    def count(self, page: int | None = None) -> int:
        if page is None:
            return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])
        query = "SELECT count(*) FROM records WHERE page = ?"
        return int(self._db.execute(query, (page,)).fetchone()[0])

    def groups(self) -> Iterator[list[Record]]:
        """The records, group by group, each group in feed order."""
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        rows = self._db.execute("SELECT grp, id, line, data FROM records ORDER BY grp, seq")
        group: list[Record] = []
        current: str | None = None
        for grp, record_id, line, data in rows:
            if grp != current and group:
                yield group
                group = []
            current = grp
            group.append(Record(record_id, line, json.loads(data)))
        if group:
            yield group

    def close(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)


class _Parser(Protocol):
    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


@dataclass
class FeedSink:
    """One download of a feed (or of one Shopify page): bytes in, records into the spool.

    :meth:`feed` never raises: the first problem is kept in :attr:`error` and the rest of the
    body is ignored (the downloader stops reading once :attr:`failed`).
    """

    spool: FeedSpool
    page: int
    report: Report
    expected: FeedFormat | None = None
    max_bytes: int = 1024**3
    error: FeedError | None = None
    format: FeedFormat | None = None
    received: int = 0
    """Bytes after gunzipping."""
    seen: int = 0
    """Items (Shopify products) read, kept or skipped."""
    _head: bytearray = field(default_factory=bytearray)
    _inflater: Any = None
    _parser: _Parser | None = None
    _started: bool = False
    _gzip_declared: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def records(self) -> int:
        return self.spool.count(self.page)

    def start(self, *, content_type: str | None = None, gzip_declared: bool = False) -> None:
        """A fresh download begins (a retry starts over)."""
        self.spool.discard_page(self.page)
        self.error, self.format, self.received, self.seen = None, None, 0, 0
        self._head, self._parser, self._started = bytearray(), None, True
        self._inflater = None
        self._gzip_declared = gzip_declared
        if content_type and "html" in content_type.lower():
            self.error = FeedError(f"answers HTML ({content_type}), not a product feed")

    def feed(self, data: bytes) -> None:
        if not self._started:
            self.start()
        if self.failed or not data:
            return
        try:
            self._take(self._inflate(data))
        except FeedError as exc:
            self.error = exc

    def finish(self) -> None:
        """The body ended: parse what is buffered; :attr:`error` says if the feed was bad."""
        if not self._started:
            self.start()
        if self.failed:
            return
        try:
            if self._inflater is not None and not self._inflater.eof:
                raise FeedError("the gzip stream ends early (truncated download?)")
            if self._parser is None:
                self._detect(final=True)
            if self._parser is not None:
                self._parser.finish()
        except FeedError as exc:
            self.error = exc

    def _inflate(self, data: bytes) -> bytes:
        if self._inflater is None and self.received == 0 and not self._head:
            if data[:2] == b"\x1f\x8b":
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif self._gzip_declared:
                raise FeedError("declared gzip but the body is not gzip")
        if self._inflater is None:
            return data
        try:
            return bytes(self._inflater.decompress(data))
        except zlib.error as exc:
            raise FeedError(f"the body is not valid gzip ({exc})") from exc

    def _take(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.max_bytes:
            raise FeedError(f"the feed is larger than {self.max_bytes:,} bytes (max_feed_bytes)")
        if self._parser is not None:
            self._parser.feed(data)
            return
        self._head += data
        if len(self._head) >= _SNIFF_BYTES:
            self._detect(final=False)

    def _detect(self, *, final: bool) -> None:
        head = bytes(self._head)
        detected = detect_format(head, final=final)
        if detected is None:
            return
        if self.expected is not None and detected is not self.expected:
            raise FeedError(f"the source says {self.expected.value}, but the content is {detected}")
        self.format = detected
        self._parser = _parser_for(detected, self)
        self._head = bytearray()
        self._parser.feed(head)


def detect_format(head: bytes, *, final: bool = True) -> FeedFormat | None:
    """The format of a feed from its first bytes: JSON is Shopify, XML is a Merchant feed, a
    header line of Merchant column names is TSV/CSV; a clear :class:`FeedError` otherwise.
    ``None``: not enough bytes yet to say."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not text:
        if final:
            raise FeedError("the feed is empty")
        return None
    lowered = text[:_SNIFF_BYTES].lower()
    if text[:1] in (b"{", b"["):
        return FeedFormat.SHOPIFY
    if text[:1] == b"<":
        if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:512]:
            raise FeedError("answers an HTML page, not a product feed")
        return FeedFormat.MERCHANT_XML
    if b"\n" not in text and not final:
        return None
    header = text.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    columns = {_column(name) for name in header.replace("\t", ",").split(",")}
    if "id" in columns and columns & {"title", "link", "image_link", "price"}:
        return FeedFormat.MERCHANT_TSV
    raise FeedError(
        "not a product feed: neither JSON, XML, nor a header line of Merchant column names "
        f"(it starts {text[:60]!r})",
        line=1,
    )


def _column(name: str) -> str:
    return name.strip().strip('"').strip().lower().removeprefix("g:")


def _parser_for(fmt: FeedFormat, sink: FeedSink) -> _Parser:
    if fmt is FeedFormat.SHOPIFY:
        return _ShopifyPage(sink)
    if fmt is FeedFormat.MERCHANT_XML:
        return _MerchantXml(sink)
    return _MerchantDelimited(sink)


class _Buffered:
    """Bytes kept in memory up to a point, then in a temporary file."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115

    def feed(self, data: bytes) -> None:
        self.file.write(data)

    def rewound(self) -> Any:
        self.file.seek(0)
        return self.file


class _ShopifyPage(_Buffered):
    """One page of ``/products.json``: ``{"products": [...]}``; each product one record."""

    def __init__(self, sink: FeedSink) -> None:
        super().__init__()
        self.sink = sink

    def finish(self) -> None:
        raw = self.rewound()
        try:
            document = json.load(io.TextIOWrapper(raw, encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise FeedError(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from exc
        except UnicodeDecodeError as exc:
            raise FeedError(f"not UTF-8 text ({exc.reason})") from exc
        finally:
            self.file.close()
        products = document.get("products") if isinstance(document, dict) else None
        if not isinstance(products, list):
            raise FeedError('JSON without a "products" list: not a Shopify products.json')
        sink = self.sink
        for position, product in enumerate(products, start=1):
            sink.seen += 1
            where = f"product {position} of page {sink.page}"
            if not isinstance(product, dict):
                raise FeedError(f"{where} is not an object")
            product_id = clean_text(product.get("id"), max_length=100)
            if product_id is None:
                sink.report("no id", where, None)
                continue
            if sink.spool.has(product_id):
                sink.report("duplicate id", product_id, None)
                continue
            if not _shopify_image_urls(product):
                sink.report("no image", product_id, None)
                continue
            sink.spool.add(product_id, product_id, sink.page, None, product)


MERCHANT_FIELDS = (
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "additional_image_link",
    "price",
    "sale_price",
    "brand",
    "color",
    "size",
    "gtin",
    "mpn",
    "product_type",
    "google_product_category",
    "availability",
    "item_group_id",
    "gender",
    "material",
    "pattern",
)


def _add_merchant_record(sink: FeedSink, fields: dict[str, Any], line: int | None) -> None:
    sink.seen += 1
    spool, page, report = sink.spool, sink.page, sink.report
    record_id = clean_text(fields.get("id"), max_length=100)
    if record_id is None:
        report("no id", None, line)
        return
    if spool.has(record_id):
        report("duplicate id", record_id, line)
        return
    if not clean_text(fields.get("image_link")):
        report("no image", record_id, line)
        return
    if not clean_text(fields.get("link")):
        report("no link", record_id, line)
        return
    group = clean_text(fields.get("item_group_id"), max_length=100) or f"\x00{record_id}"
    spool.add(record_id, group, page, line, fields)


class _MerchantXml:
    """RSS 2.0 (``rss/channel/item``) or Atom (``feed/entry``), fields in the ``g:``
    namespace, parsed incrementally; each item is cleared once read."""

    def __init__(self, sink: FeedSink) -> None:
        self.sink = sink
        self.parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        self.depth = 0
        self.root_checked = False
        self.items = 0

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except etree.XMLSyntaxError as exc:
            raise _xml_error(exc) from exc
        self._drain()

    def finish(self) -> None:
        try:
            self.parser.close()
        except etree.XMLSyntaxError as exc:
            raise _xml_error(exc) from exc
        self._drain()
        if not self.root_checked:
            raise FeedError("the XML has no root element")
        if self.items == 0:
            raise FeedError("no <item> or <entry> elements: not a Merchant feed")

    def _drain(self) -> None:
        for event, element in self.parser.read_events():
            if event == "start":
                self.depth += 1
                if not self.root_checked:
                    self._check_root(element)
                continue
            self.depth -= 1
            name = etree.QName(element)
            if name.localname in ("item", "entry") and name.namespace in (None, ATOM_NS):
                self.items += 1
                _add_merchant_record(self.sink, _item_fields(element), element.sourceline)
                element.clear(keep_tail=False)
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
            elif self.depth <= 1:
                element.clear(keep_tail=False)

    def _check_root(self, root: Any) -> None:
        self.root_checked = True
        dtd = root.getroottree().docinfo.internalDTD
        if dtd is not None and any(True for _ in dtd.iterentities()):
            raise FeedError(
                "refused: the XML declares entities (entity expansion is how an XML bomb works)",
                root.sourceline,
            )
        name = etree.QName(root)
        if name.localname not in ("rss", "feed"):
            raise FeedError(f"the XML root is <{name.localname}>, not RSS or Atom", root.sourceline)


def _xml_error(exc: etree.XMLSyntaxError) -> FeedError:
    message = exc.msg or str(exc)
    if "amplification" in message.lower() or "entity loop" in message.lower():
        reason = f"refused: entities that would expand (an XML bomb): {message}"
        return FeedError(reason, exc.lineno)
    return FeedError(f"malformed XML: {message}", exc.lineno or None)


def _item_fields(item: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for child in item:
        for node in child.iter():
            if isinstance(node, etree._Entity):
                raise FeedError(
                    f"an entity reference ({node.text}): refused, entities are never expanded",
                    node.sourceline,
                )
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child)
        text = "".join(child.itertext()).strip()
        if name.localname == "link" and name.namespace == ATOM_NS:
            rel = child.get("rel", "alternate")
            if rel == "alternate" and "link" not in plain:
                plain["link"] = child.get("href", "")
            continue
        target = fields if name.namespace == G_NS else plain
        if name.localname == "additional_image_link":
            target.setdefault(name.localname, []).extend(_split_links(text))
        elif name.localname not in target:
            target[name.localname] = text
    for key in ("title", "link", "description"):
        if key not in fields and key in plain:
            fields[key] = plain[key]
    return {key: value for key, value in fields.items() if key in MERCHANT_FIELDS}


def _split_links(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class _MerchantDelimited(_Buffered):
    """TSV (or CSV) with a header line of Merchant column names."""

    def __init__(self, sink: FeedSink) -> None:
        super().__init__()
        self.sink = sink

    def finish(self) -> None:
        text = io.TextIOWrapper(self.rewound(), encoding="utf-8-sig", newline="")
        try:
            header_line = text.readline()
            delimiter = "\t" if "\t" in header_line else ","
            text.seek(0)
            reader = csv.reader(text, delimiter=delimiter, strict=True)
            header = [_column(name) for name in next(reader)]
            if "id" not in header:
                raise FeedError("the header line has no id column", 1)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(header):
                    raise FeedError(
                        f"{len(row)} columns where the header has {len(header)}", reader.line_num
                    )
                fields: dict[str, Any] = {}
                for name, cell in zip(header, row, strict=False):
                    if name == "additional_image_link":
                        fields[name] = _split_links(cell)
                    elif name in MERCHANT_FIELDS:
                        fields[name] = cell.strip()
                _add_merchant_record(self.sink, fields, reader.line_num)
        except csv.Error as exc:
            raise FeedError(f"malformed {_delimited(delimiter)}: {exc}", reader.line_num) from exc
        except UnicodeDecodeError as exc:
            raise FeedError(f"not UTF-8 text ({exc.reason})") from exc
        finally:
            self.file.close()


def _delimited(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


# -- records -> items ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedContext:
    """What turning records into items needs besides the records."""

    base_url: str
    """The shop's origin: Shopify product pages are ``<base_url>/products/<handle>``."""
    currency: str | None
    """The feed's currency: Shopify's, and Merchant prices that name none."""
    report: Report


def shopify_products(record: Record, context: FeedContext) -> list[ProductItem]:
    """The products of one Shopify product: one per colour option value (one in all when
    it has no colour option)."""
    product = record.data
    handle = clean_text(product.get("handle")) or record.id
    page_url = f"{context.base_url.rstrip('/')}/products/{handle}"
    variants = [v for v in product.get("variants") or [] if isinstance(v, dict)]
    colour_index = _colour_option(product.get("options"))
    by_colour: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        colour = ""
        if colour_index is not None:
            colour = clean_text(variant.get(f"option{colour_index}"), max_length=100) or ""
        by_colour.setdefault(colour, []).append(variant)
    if not by_colour:
        by_colour[""] = []
    images = [i for i in product.get("images") or [] if isinstance(i, dict) and i.get("src")]
    unbound = [str(i["src"]) for i in images if not i.get("variant_ids")]
    labels = split_labels([product.get("product_type")])
    description = _html_text(product.get("body_html"))
    items = []
    for colour, group in by_colour.items():
        ids = {v.get("id") for v in group}
        own = [str(i["src"]) for i in images if ids & set(i.get("variant_ids") or [])]
        featured = [
            str(v["featured_image"]["src"])
            for v in group
            if isinstance(v.get("featured_image"), dict) and v["featured_image"].get("src")
        ]
        urls = _unique([*featured, *own]) or unbound or [str(i["src"]) for i in images]
        priced = [
            (amount, v) for v in group if (amount := parse_price(v.get("price"))[0]) is not None
        ]
        in_stock = [v for v in group if v.get("available") is not False]
        cheapest = min(priced, key=lambda pair: pair[0]) if priced else None
        attributes: dict[str, Any] = {"group_id": record.id}
        if colour:
            attributes["color"] = colour
        if description:
            attributes["description"] = description
        sizes = _unique(
            [
                text
                for v in group
                for index in range(1, 4)
                if index != colour_index
                and (text := clean_text(v.get(f"option{index}")))
                and text.lower() != "default title"
            ]
        )
        if sizes:
            attributes["sizes"] = sizes
        attributes["variant_ids"] = sorted(str(v.get("id")) for v in group if v.get("id"))
        gtins = _unique([text for v in group if (text := clean_text(v.get("barcode")))])
        if gtins:
            attributes["gtin"] = gtins
        if cheapest is not None:
            compare = parse_price(cheapest[1].get("compare_at_price"))[0]
            if compare is not None and compare > cheapest[0]:
                attributes["original_price"] = str(compare)
        url = page_url
        if len(by_colour) > 1 and group and group[0].get("id"):
            url = f"{page_url}?variant={group[0]['id']}"
        items.append(
            ProductItem(
                url=url,
                title=clean_text(product.get("title"), max_length=1000),
                brand=clean_text(product.get("vendor"), max_length=200),
                price=cheapest[0] if cheapest and context.currency else None,
                currency=context.currency,
                category_labels=labels,
                image_urls=urls,
                sku=_identity(record.id, colour),
                availability="InStock" if in_stock or not group else "OutOfStock",
                available=bool(in_stock) or not group,
                attributes=attributes,
                extracted_from="shopify-feed",
            )
        )
    return items


def _colour_option(options: object) -> int | None:
    """The position (1-3) of a Shopify product's colour option, if it has one."""
    if not isinstance(options, list):
        return None
    for index, option in enumerate(options, start=1):
        name = option.get("name") if isinstance(option, dict) else option
        position = option.get("position", index) if isinstance(option, dict) else index
        if isinstance(name, str) and name.strip().lower() in _COLOUR_OPTIONS:
            return int(position) if isinstance(position, int) and 1 <= position <= 3 else index
    return None


def _shopify_image_urls(product: Mapping[str, Any]) -> list[str]:
    images = product.get("images")
    return [str(i["src"]) for i in images or [] if isinstance(i, dict) and i.get("src")]


def merchant_products(records: Sequence[Record], context: FeedContext) -> list[ProductItem]:
    """The products of one Merchant item group (or one ungrouped item): one per colour."""
    grouped = bool(clean_text(records[0].data.get("item_group_id")))
    group_id = clean_text(records[0].data.get("item_group_id"), max_length=100) or records[0].id
    by_colour: dict[str, list[Record]] = {}
    for record in records:
        colour = clean_text(record.data.get("color"), max_length=100) or ""
        by_colour.setdefault(colour.lower(), []).append(record)
    items = []
    for colour_key, group in by_colour.items():
        first = group[0].data
        colour = clean_text(first.get("color"), max_length=100) or ""
        offers = [_merchant_offer(record, context) for record in group]
        in_stock = [offer for offer in offers if offer.available]
        priced = [offer for offer in (in_stock or offers) if offer.price is not None]
        cheapest = min(priced, key=lambda offer: offer.price or 0) if priced else None
        urls = _unique(
            [
                url
                for record in group
                for url in [
                    record.data.get("image_link"),
                    *(record.data.get("additional_image_link") or []),
                ]
                if isinstance(url, str) and url.strip()
            ]
        )
        attributes: dict[str, Any] = {"group_id": group_id} if grouped else {}
        if colour:
            attributes["color"] = colour
        for key in ("gender", "material", "pattern"):
            if text := clean_text(first.get(key), max_length=200):
                attributes[key] = text
        if description := clean_text(first.get("description"), max_length=MAX_DESCRIPTION):
            attributes["description"] = description
        sizes = _unique([text for r in group if (text := clean_text(r.data.get("size")))])
        if sizes:
            attributes["sizes"] = sizes
        if grouped:
            attributes["variant_ids"] = sorted(record.id for record in group)
        for key in ("gtin", "mpn"):
            values = _unique([text for r in group if (text := clean_text(r.data.get(key)))])
            if values:
                attributes[key] = values
        if text := clean_text(first.get("google_product_category"), max_length=500):
            attributes["google_product_category"] = text
        if cheapest is not None and cheapest.original is not None:
            attributes["original_price"] = str(cheapest.original)
        labels = split_labels([first.get("product_type")]) or [
            label
            for label in split_labels([first.get("google_product_category")])
            if not label.isdigit()
        ]
        items.append(
            ProductItem(
                url=str(first.get("link")).strip(),
                title=clean_text(first.get("title"), max_length=1000),
                brand=clean_text(first.get("brand"), max_length=200),
                price=cheapest.price if cheapest else None,
                currency=cheapest.currency if cheapest else None,
                category_labels=labels,
                image_urls=urls,
                sku=_identity(group_id, colour_key) if grouped else records[0].id,
                availability="InStock" if in_stock else offers[0].availability,
                available=bool(in_stock),
                attributes=attributes,
                extracted_from="merchant-feed",
            )
        )
    # Colours of one group at one address get their own (``?variant=<their first id>``), so
    # each colour's address stays the same whatever order the feed lists them in.
    links = Counter(item.url for item in items)
    for item in items:
        if links[item.url] > 1:
            item.url = with_variant(item.url, item.attributes.get("variant_ids", [item.sku])[0])
    return items


@dataclass(frozen=True)
class _Offer:
    price: Decimal | None
    currency: str | None
    original: Decimal | None
    availability: str | None
    available: bool


def _merchant_offer(record: Record, context: FeedContext) -> _Offer:
    """Price (the sale price when there is one), currency and availability of one item."""
    data = record.data
    price, currency = _merchant_price(record, "price", context)
    sale, sale_currency = _merchant_price(record, "sale_price", context)
    original = None
    if sale is not None and (price is None or sale < price):
        original, price, currency = price, sale, sale_currency or currency
    availability = normalize_availability(data.get("availability"))
    if data.get("availability") and availability is None:
        context.report("unknown availability", record.id, record.line)
    return _Offer(price, currency, original, availability, availability not in UNAVAILABLE)


def _merchant_price(
    record: Record, key: str, context: FeedContext
) -> tuple[Decimal | None, str | None]:
    raw = record.data.get(key)
    if not clean_text(raw):
        return None, None
    amount, currency = parse_price(raw)
    if amount is None:
        context.report(f"unreadable {key}", record.id, record.line)
        return None, None
    currency = normalize_currency(currency) or context.currency
    if currency is None:
        context.report(f"{key} without a currency", record.id, record.line)
        return None, None
    return amount, currency


def _identity(group_id: str, colour: str) -> str:
    return f"{group_id}:{colour.lower()}"[:200] if colour else group_id[:200]


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _html_text(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        text = lxml_html.fromstring(value).text_content()
    except (etree.ParserError, ValueError):
        return clean_text(value, max_length=MAX_DESCRIPTION)
    return clean_text(text, max_length=MAX_DESCRIPTION)


def with_variant(url: str, variant: str) -> str:
    """``url`` with ``variant=<id>`` in its query: two products of a feed at one address."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "variant"]
    query.append(("variant", variant))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def shopify_page_url(feed_url: str, page: int, limit: int = 250) -> str:
    """``feed_url`` asking for one page: ``?limit=250&page=N`` (other parameters kept)."""
    parts = urlsplit(feed_url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("limit", "page")
    ]
    query += [("limit", str(limit)), ("page", str(page))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
