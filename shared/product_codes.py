"""The identifiers that say two shops sell the same product: GTINs, and a brand's MPN.

A GTIN (EAN-13, UPC-A, GTIN-8, GTIN-14) names one trade item wherever it is sold; a
manufacturer part number (MPN) does so only together with its brand. Shops type them in by
hand, so they are read leniently (spaces and hyphens dropped) and checked strictly: a GTIN
must have 8, 12, 13 or 14 digits and a valid check digit, or it is ignored with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CodeKind = Literal["gtin", "mpn"]

GTIN_LENGTHS = (8, 12, 13, 14)
UPC_WITHOUT_ZERO = 11
"""A UPC-A whose leading zero a spreadsheet or a JSON number dropped: read with it."""
_SEPARATORS = re.compile(r"[\s\-.]+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, order=True)
class Code:
    """One normalised identifier: ``gtin`` as 14 digits, ``mpn`` as ``brand|part``."""

    kind: CodeKind
    value: str


@dataclass(frozen=True)
class Rejected:
    """An identifier the product gave that cannot be merged on, and why."""

    kind: CodeKind
    given: str
    reason: str


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit of ``body`` (all digits of a GTIN but the last)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize_gtin(given: str) -> str:
    """``given`` as a GTIN-14 (zero-padded, so a UPC-A and its EAN-13 are one code).

    Raises ValueError naming what is wrong: not digits, a length GTINs do not have (11 digits
    are read as a UPC-A that lost its leading zero), all zeros, or a wrong check digit."""
    digits = _SEPARATORS.sub("", given.strip())
    if not digits.isdigit() or not digits.isascii():
        raise ValueError("not digits")
    if len(digits) == UPC_WITHOUT_ZERO:
        digits = "0" + digits
    if len(digits) not in GTIN_LENGTHS:
        raise ValueError(f"{len(digits)} digits (a GTIN has 8, 12, 13 or 14)")
    if not digits.strip("0"):
        raise ValueError("all zeros")
    expected = gtin_check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        raise ValueError(f"check digit {digits[-1]}, expected {expected}")
    return digits.zfill(14)


def normalize_part(text: str) -> str:
    """A brand or an MPN as compared: lower case, letters and digits only."""
    return _NOT_ALNUM.sub("", text.casefold())


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [str(item) for item in items if isinstance(item, str | int) and str(item).strip()]


def product_codes(
    brand: str | None, attributes: Mapping[str, Any]
) -> tuple[set[Code], list[Rejected]]:
    """The codes of a product from its ``attributes`` (``gtin`` and ``mpn``, one or a list, as
    the feeds and the product pages' JSON-LD give them) and its brand, and those rejected."""
    codes: set[Code] = set()
    rejected: list[Rejected] = []
    for given in _values(attributes.get("gtin")):
        try:
            codes.add(Code("gtin", normalize_gtin(given)))
        except ValueError as exc:
            rejected.append(Rejected("gtin", given, str(exc)))
    maker = normalize_part(brand or "")
    for given in _values(attributes.get("mpn")):
        part = normalize_part(given)
        if not part:
            rejected.append(Rejected("mpn", given, "no letter or digit"))
        elif not maker:
            rejected.append(
                Rejected("mpn", given, "no brand (an MPN names a product only with its brand)")
            )
        else:
            codes.add(Code("mpn", f"{maker}|{part}"))
    return codes, rejected


def describe(codes: Iterable[Code]) -> str:
    """``gtin 00012345678905, mpn acme|ab123`` for people."""
    return ", ".join(f"{code.kind} {code.value}" for code in sorted(codes))
