"""One product across shops (issue 31): products of different shops with the same GTIN, or
the same MPN and brand, become one offer group when they are written, with the evidence of
each merge; a wrong merge is undone by a split that is remembered. Both databases."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli import main
from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from shared.errors import InvalidInputError, NotFoundError
from shared.settings import Settings, get_settings

pytestmark = pytest.mark.integration

EAN = "4006381333931"  # an EAN-13 with a valid check digit
UPC = "036000291452"  # a UPC-A; its EAN-13 is 0036000291452
BAD = "4006381333932"  # EAN with a wrong check digit


def _shop(catalog: Catalog, name: str) -> int:
    return catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/")).id


def _write(catalog: Catalog, source_id: int, slug: str, **fields: Any) -> int:
    """One product of the source (written as a crawl or a feed writes it); its id."""
    attributes = fields.pop("attributes", {})
    item = ProductIn(
        canonical_url=f"https://s{source_id}.example/p/{slug}",
        title=fields.pop("title", f"tee {slug}"),
        price=fields.pop("price", 20),
        currency="EUR",
        attributes=attributes,
        images=(ImageIn(url=f"https://s{source_id}.example/img/{slug}.jpg"),),
        **fields,
    )
    report = catalog.upsert_products(source_id, [item])
    [product_id] = report.created or report.updated or report.unchanged
    return product_id


def _group_of(catalog: Catalog, product_id: int) -> set[int] | None:
    group = catalog.offers_of([product_id]).get(product_id)
    return None if group is None else {offer.product_id for offer in group.offers}


def test_same_gtin_in_two_shops_is_one_group_with_its_evidence(catalog: Catalog) -> None:
    north, south = _shop(catalog, "north"), _shop(catalog, "south")
    a = _write(catalog, north, "a", attributes={"gtin": [UPC]})
    assert _group_of(catalog, a) is None, "alone: no group"
    b = _write(catalog, south, "b", attributes={"gtin": f"00{UPC}"}, price=18)  # GTIN-14 form
    assert _group_of(catalog, a) == _group_of(catalog, b) == {a, b}
    [group] = catalog.list_offer_groups()
    assert [o.product_id for o in group.offers] == [b, a], "cheapest first"
    by_id = {offer.product_id: offer for offer in group.offers}
    assert by_id[b].kind == by_id[a].kind == "gtin"
    assert by_id[b].value == "00036000291452"
    assert by_id[b].matched_product_id == a and by_id[a].matched_product_id == b
    assert by_id[a].shop == "north" and by_id[b].shop == "south"
    assert by_id[a].merged_at is not None
    assert catalog.offer_group(group.id) == group
    # Written again unchanged: nothing moves.
    _write(catalog, south, "b", attributes={"gtin": f"00{UPC}"}, price=18)
    assert catalog.list_offer_groups() == [group]


def test_same_mpn_and_brand_merges_and_mpn_without_brand_does_not(catalog: Catalog) -> None:
    north, south, east = (_shop(catalog, n) for n in ("north", "south", "east"))
    a = _write(catalog, north, "a", brand="Acme Wear", attributes={"mpn": "AB-123"})
    b = _write(catalog, south, "b", brand="acme  wear", attributes={"mpn": ["ab 123"]})
    c = _write(catalog, east, "c", attributes={"mpn": "AB-123"})  # no brand
    d = _write(catalog, east, "d", brand="Other", attributes={"mpn": "AB-123"})
    assert _group_of(catalog, a) == {a, b}
    [group] = catalog.list_offer_groups()
    assert {o.value for o in group.offers} == {"acmewear|ab123"}
    assert _group_of(catalog, c) is None and _group_of(catalog, d) is None


def test_an_invalid_gtin_is_ignored_with_its_reason(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    north, south = _shop(catalog, "north"), _shop(catalog, "south")
    with caplog.at_level(logging.INFO, logger="shared.db.offers"):
        a = _write(catalog, north, "a", attributes={"gtin": [BAD, "12345", "n/a"]})
        b = _write(catalog, south, "b", attributes={"gtin": BAD})
    assert _group_of(catalog, a) is None and _group_of(catalog, b) is None
    said = caplog.text
    assert f"product {a}: gtin '{BAD}' not merged on: check digit 2, expected 1" in said
    assert "gtin '12345' not merged on: 5 digits (a GTIN has 8, 12, 13 or 14)" in said
    assert "gtin 'n/a' not merged on: not digits" in said


def test_one_gtin_twice_in_one_shop_is_no_group_and_one_of_them_joins(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    """A shop listing one item twice: its two products are not an offer group (one shop is
    not several offers), and a group holds one product per shop: the first written joins
    another shop's, the second stays on its own (logged)."""
    north, south = _shop(catalog, "north"), _shop(catalog, "south")
    first = _write(catalog, north, "first", attributes={"gtin": EAN})
    second = _write(catalog, north, "second", attributes={"gtin": EAN})
    assert catalog.list_offer_groups() == []
    with caplog.at_level(logging.INFO, logger="shared.db.offers"):
        other = _write(catalog, south, "other", attributes={"gtin": EAN})
        catalog.group_offers()  # the upkeep pass says the same
    assert _group_of(catalog, other) == {first, other}
    assert _group_of(catalog, second) is None
    assert f"product {second} not merged into offer group" in caplog.text
    assert "it has product" in caplog.text and "of the same shop already" in caplog.text


def test_split_detaches_and_is_remembered(catalog: Catalog) -> None:
    north, south, east = (_shop(catalog, n) for n in ("north", "south", "east"))
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": [EAN, UPC]})
    c = _write(catalog, east, "c", attributes={"gtin": EAN})
    [group] = catalog.list_offer_groups()
    assert {o.product_id for o in group.offers} == {a, b, c}

    split = catalog.split_offer(b)
    assert split.group_id == group.id
    assert split.codes == ["gtin 04006381333931"]
    assert _group_of(catalog, b) is None
    assert _group_of(catalog, a) == _group_of(catalog, c) == {a, c}, "the rest regrouped"
    # Written again, changed, and the upkeep pass over everything: not merged on it again.
    _write(catalog, south, "b", attributes={"gtin": [EAN, UPC]}, title="tee b, new title")
    catalog.group_offers()
    assert _group_of(catalog, b) is None
    # A new identifier is new evidence: it merges on that.
    d = _write(catalog, north, "d", attributes={"gtin": UPC})
    assert _group_of(catalog, b) == {b, d}


def test_split_of_the_link_between_two_others_regroups_them_on_their_own(
    catalog: Catalog,
) -> None:
    north, south, east = (_shop(catalog, n) for n in ("north", "south", "east"))
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": [EAN, UPC]})
    c = _write(catalog, east, "c", attributes={"gtin": UPC})
    assert _group_of(catalog, a) == {a, b, c}
    catalog.split_offer(b)
    assert _group_of(catalog, a) is None and _group_of(catalog, c) is None
    assert catalog.list_offer_groups() == []


def test_split_errors_say_what_is_wrong(catalog: Catalog) -> None:
    north = _shop(catalog, "north")
    alone = _write(catalog, north, "alone", attributes={"gtin": EAN})
    with pytest.raises(NotFoundError, match="no product 999999"):
        catalog.split_offer(999_999)
    with pytest.raises(InvalidInputError, match=f"product {alone} is in no offer group"):
        catalog.split_offer(alone)
    with pytest.raises(NotFoundError, match="no offer group 424242"):
        catalog.offer_group(424_242)


def test_changed_identifiers_leave_the_group(catalog: Catalog) -> None:
    north, south = _shop(catalog, "north"), _shop(catalog, "south")
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": EAN})
    assert _group_of(catalog, a) == {a, b}
    _write(catalog, south, "b", attributes={"gtin": UPC})
    assert _group_of(catalog, a) is None and _group_of(catalog, b) is None
    catalog.group_offers()
    assert catalog.list_offer_groups() == []


def test_a_removed_shop_leaves_its_groups_rebuilt_from_the_others(catalog: Catalog) -> None:
    north, south, east = (_shop(catalog, n) for n in ("north", "south", "east"))
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": [EAN, UPC]})
    c = _write(catalog, east, "c", attributes={"gtin": UPC})
    d = _write(catalog, north, "d", attributes={"gtin": "96385074"})
    e = _write(catalog, east, "e", attributes={"gtin": "96385074"})
    assert _group_of(catalog, a) == {a, b, c} and _group_of(catalog, d) == {d, e}
    catalog.remove_source("south")
    assert _group_of(catalog, a) is None and _group_of(catalog, c) is None, "b linked them"
    assert _group_of(catalog, d) == {d, e}
    catalog.remove_source("east")
    assert catalog.list_offer_groups() == []


def test_offers_of_respect_the_shops_and_activity(catalog: Catalog) -> None:
    north, south, east = (_shop(catalog, n) for n in ("north", "south", "east"))
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": EAN})
    c = _write(catalog, east, "c", attributes={"gtin": EAN}, available=False)
    assert _group_of(catalog, a) == {a, b}, "an inactive offer is not shown"
    scoped = catalog.offers_of([a, b, c], shops=["north", "east"])
    assert {o.product_id for o in scoped[a].offers} == {a}
    assert set(scoped) == {a, b, c}


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_offers_list_show_split_and_group_from_the_cli(
    runner: CliRunner, settings: Settings
) -> None:
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    empty = runner.invoke(main, ["offers", "list"])
    assert empty.exit_code == 0 and "no offer groups" in empty.output
    north, south = _shop(catalog, "north"), _shop(catalog, "south")
    a = _write(catalog, north, "a", attributes={"gtin": EAN})
    b = _write(catalog, south, "b", attributes={"gtin": EAN}, price="18.50")
    alone = _write(catalog, south, "alone")
    [group] = catalog.list_offer_groups()

    listed = runner.invoke(main, ["offers", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"offer group {group.id}" in listed.stdout
    assert f"product {b:<8} south" in listed.stdout and "18.50 EUR" in listed.stdout
    assert f"merged on gtin 04006381333931 = product {a}" in listed.stdout
    as_json = runner.invoke(main, ["offers", "list", "--json"])
    [line] = as_json.stdout.splitlines()
    assert {o["product_id"] for o in json.loads(line)["offers"]} == {a, b}
    shown = runner.invoke(main, ["offers", "show", str(group.id)])
    assert shown.exit_code == 0 and shown.stdout == listed.stdout

    errors = {
        ("show", "999"): "no offer group 999",
        ("show", "x"): "'x' is not a valid integer",
        ("split", "999999"): "no product 999999",
        ("split", str(alone)): f"product {alone} is in no offer group",
    }
    for args, said in errors.items():
        result = runner.invoke(main, ["offers", *args])
        assert result.exit_code != 0 and said in result.output, (args, result.output)
    assert catalog.list_offer_groups() == [group], "nothing changed by a refusal"

    split = runner.invoke(main, ["offers", "split", str(b)])
    assert split.exit_code == 0, split.output
    assert f"product {b} split from offer group {group.id}" in split.stdout
    assert "not merged again on: gtin 04006381333931" in split.stdout
    assert catalog.list_offer_groups() == []
    grouped = runner.invoke(main, ["offers", "group"])
    assert grouped.exit_code == 0, grouped.output
    assert "3 products read: 0 merged, 0 offer groups made" in grouped.stdout
    catalog.dispose()
