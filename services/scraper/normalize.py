"""Pure normalisation helpers: prices, currencies, URLs, categories, availability.

Every function takes what a shop page gave (strings, numbers, ``None``) and returns a clean
value or ``None``; none of them raises on bad input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

MAX_PRICE = Decimal("9999999999.99")
"""The catalog stores prices as NUMERIC(12, 2)."""
MAX_URL_LENGTH = 2048

_CENT = Decimal("0.01")
_CURRENCY_SYMBOLS = {
    "€": "EUR",
    "£": "GBP",
    "$": "USD",
    "US$": "USD",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "zł": "PLN",
    "kč": "CZK",
    "fr.": "CHF",
    "chf": "CHF",
}
_ISO_CODE = re.compile(r"\b([A-Z]{3})\b")
_PLAIN_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")
_NUMBER = re.compile(r"[-+]?\d[\d\s.,'\u00a0\u202f]*")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|ref|srsltid)$")
_LABEL_SPLIT = re.compile(r"\s*(?:>|›|»|\||/(?=\s)|(?<=\s)/)\s*")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

AVAILABILITY = (
    "InStock",
    "OutOfStock",
    "LimitedAvailability",
    "PreOrder",
    "BackOrder",
    "Discontinued",
    "InStoreOnly",
    "OnlineOnly",
    "SoldOut",
    "PreSale",
    "Reserved",
    "MadeToOrder",
)
_AVAILABILITY_BY_KEY = {name.lower(): name for name in AVAILABILITY}


def clean_text(value: object, *, max_length: int | None = None) -> str | None:
    """Collapse whitespace; ``None`` for empty or non-text values."""
    if value is None or isinstance(value, dict | list | tuple | bool):
        return None
    text = _CONTROL.sub("", unicodedata.normalize("NFC", str(value)))
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return None
    return text[:max_length] if max_length else text


def parse_price(value: object) -> tuple[Decimal | None, str | None]:
    """``(amount, currency)`` from a schema.org price or a shop's price text.

    Understands numbers, ``"1,234.56"``, ``"1.234,56 €"``, ``"€ 12"``, ``"12.99 EUR"``,
    ``"CHF 1'299.-"``. A plain number (``"12.500"``) uses ``.`` as the decimal mark, as
    schema.org requires; grouping is only guessed when the text has more than the number.
    Non-numeric, negative, non-finite or absurdly large prices give ``None`` (the product
    is kept without a price); the currency is ``None`` when the text does not say.
    """
    if value is None or isinstance(value, bool):
        return None, None
    if isinstance(value, int | float | Decimal):
        return _money(Decimal(str(value))), None
    text = clean_text(value)
    if text is None:
        return None, None
    if _PLAIN_NUMBER.match(text):
        return _money(Decimal(text)), None
    currency = currency_in(text)
    match = _NUMBER.search(text)
    if match is None:
        return None, currency
    number = _parse_number(match.group(0))
    return (_money(number) if number is not None else None), currency


def _parse_number(raw: str) -> Decimal | None:
    digits = re.sub(r"[\s'\u00a0\u202f]", "", raw).rstrip(".,")
    sign = ""
    if digits[:1] in "+-":
        sign, digits = digits[0], digits[1:]
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_comma >= 0 or last_dot >= 0:
        mark = "," if last_comma >= 0 else "."
        head, _, tail = digits.rpartition(mark)
        # "1,234" / "1.234" with exactly three digits after a single mark is a thousands
        # separator; "12,99" / "12.5" is a decimal mark.
        grouped = digits.count(mark) > 1 or (len(tail) == 3 and head.isdigit() and head != "0")
        decimal_mark = "" if grouped else mark
    else:
        decimal_mark = ""
    thousands = {".", ","} - {decimal_mark}
    for separator in thousands:
        digits = digits.replace(separator, "")
    if decimal_mark:
        digits = digits.replace(decimal_mark, ".")
    try:
        return Decimal(sign + digits)
    except InvalidOperation:
        return None


def _money(amount: Decimal) -> Decimal | None:
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        return None
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def currency_in(text: str) -> str | None:
    """An ISO 4217 code named or symbolised in ``text`` (``"12 €"`` -> ``EUR``)."""
    if match := _ISO_CODE.search(text):
        return match.group(1)
    lowered = text.lower()
    for symbol in sorted(_CURRENCY_SYMBOLS, key=len, reverse=True):
        if symbol.lower() in lowered:
            return _CURRENCY_SYMBOLS[symbol]
    return None


def normalize_currency(value: object) -> str | None:
    """A three-letter upper-case code, from a code or a symbol; ``None`` otherwise."""
    text = clean_text(value)
    if text is None:
        return None
    if re.fullmatch(r"[A-Za-z]{3}", text):
        return text.upper()
    return currency_in(text)


def absolute_url(value: object, base_url: str) -> str | None:
    """An absolute http(s) URL: relative and protocol-relative links resolved against
    ``base_url``, fragment dropped; ``None`` for ``data:``, ``javascript:``, garbage."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        joined = urljoin(base_url, text.strip())
        parts = urlsplit(joined)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    url = urlunsplit(
        (parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, "")
    ).replace(" ", "%20")
    return url if len(url) <= MAX_URL_LENGTH else None


def canonical_url(value: object, base_url: str) -> str | None:
    """:func:`absolute_url`, plus a stable identity: default ports and tracking parameters
    (``utm_*``, ``gclid``, ...) removed. Query order is kept: shops route on it."""
    url = absolute_url(value, base_url)
    if url is None:
        return None
    parts = urlsplit(url)
    netloc = parts.netloc
    default_port = {"http": ":80", "https": ":443"}[parts.scheme]
    if netloc.endswith(default_port):
        netloc = netloc[: -len(default_port)]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(key, value) for key, value in pairs if not _TRACKING_PARAMS.match(key.lower())]
        if len(kept) != len(pairs):
            query = urlencode(kept, doseq=True)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def same_site(url: str, domains: Iterable[str]) -> bool:
    """True when ``url``'s host is one of ``domains`` or a subdomain of one."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def split_labels(values: Iterable[object]) -> list[str]:
    """Category labels from strings like ``"Women > Clothing > Tops"``, in order, deduplicated."""
    labels: list[str] = []
    for value in values:
        text = clean_text(value, max_length=500)
        if text is None:
            continue
        for part in _LABEL_SPLIT.split(text):
            label = clean_text(part, max_length=100)
            if label and label not in labels:
                labels.append(label)
    return labels


def map_category(labels: list[str], mapping: Mapping[str, str]) -> str | None:
    """The catalog category for a product's labels.

    With a mapping: the first label, from the most specific (last) to the least, that the
    mapping knows (case-insensitively); ``None`` when none is known. Without a mapping: the
    most specific label, lower-cased.
    """
    if not labels:
        return None
    if not mapping:
        return labels[-1].lower()[:100]
    lookup = {key.strip().lower(): value.strip() for key, value in mapping.items()}
    for label in [" > ".join(labels), *reversed(labels)]:
        if (category := lookup.get(label.lower())) is not None:
            return category
    return None


def normalize_availability(value: object) -> str | None:
    """schema.org ItemAvailability name (``InStock``) from a URL, a name or loose text."""
    text = clean_text(value)
    if text is None:
        return None
    name = text.rstrip("/").rsplit("/", 1)[-1]
    key = re.sub(r"[\s_-]", "", name).lower()
    if key in _AVAILABILITY_BY_KEY:
        return _AVAILABILITY_BY_KEY[key]
    lowered = text.lower()
    if "out of stock" in lowered or "sold out" in lowered or "unavailable" in lowered:
        return "OutOfStock"
    if "pre-order" in lowered or "preorder" in lowered:
        return "PreOrder"
    if "few left" in lowered or "limited" in lowered:
        return "LimitedAvailability"
    if "in stock" in lowered or "available" in lowered:
        return "InStock"
    return None
