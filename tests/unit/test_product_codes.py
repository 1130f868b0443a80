"""GTINs and MPNs as offer groups compare them: lenient reading, strict checking."""

from __future__ import annotations

import re

import pytest

from shared.product_codes import Code, gtin_check_digit, normalize_gtin, product_codes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "gtin14"),
    [
        ("4006381333931", "04006381333931"),  # EAN-13
        ("036000291452", "00036000291452"),  # UPC-A
        ("36000291452", "00036000291452"),  # the UPC-A without its leading zero
        ("0036000291452", "00036000291452"),  # its EAN-13
        ("96385074", "00000096385074"),  # GTIN-8
        ("10012345678902", "10012345678902"),  # GTIN-14
        (" 400-6381 333931 ", "04006381333931"),  # typed by hand
    ],
)
def test_gtins_of_every_length_are_one_gtin_14(given: str, gtin14: str) -> None:
    assert normalize_gtin(given) == gtin14
    assert gtin_check_digit(gtin14[:-1]) == int(gtin14[-1])


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("4006381333932", "check digit 2, expected 1"),
        ("1234567", "7 digits (a GTIN has 8, 12, 13 or 14)"),
        ("123456789012345", "15 digits"),
        ("00000000000000", "all zeros"),
        ("40063813339E1", "not digits"),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", "not digits"),  # Arabic-Indic digits are not a GTIN
        ("", "not digits"),
    ],
)
def test_invalid_gtins_say_why(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        normalize_gtin(given)


def test_product_codes_from_attributes() -> None:
    codes, rejected = product_codes(
        "Acme Wear", {"gtin": ["4006381333931", "bad"], "mpn": "AB-123", "color": "red"}
    )
    assert codes == {Code("gtin", "04006381333931"), Code("mpn", "acmewear|ab123")}
    assert [(r.kind, r.given) for r in rejected] == [("gtin", "bad")]
    codes, rejected = product_codes(None, {"mpn": ["AB-123"], "gtin": 4006381333931})
    assert codes == {Code("gtin", "04006381333931")}
    assert rejected[0].kind == "mpn" and "no brand" in rejected[0].reason
    assert product_codes("Acme", {"mpn": "--"})[1][0].reason == "no letter or digit"
    assert product_codes("Acme", {}) == (set(), [])
