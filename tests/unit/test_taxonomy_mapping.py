"""Shop category -> garment class: the operator's override, the label, the crops' votes."""

from __future__ import annotations

import pytest

from shared.taxonomy import CLASSES, CategoryMapping, class_named, map_category

pytestmark = pytest.mark.unit


def test_the_operators_override_wins_over_the_name_and_the_votes() -> None:
    mapping = map_category("Jeans", override="Pants", votes={"jeans": 6, "shorts": 2, "top": 2})
    assert mapping == CategoryMapping("Jeans", "trousers", "operator", votes=10, share=0.8)
    assert mapping.parent == "bottom"


@pytest.mark.parametrize(
    ("category", "garment"),
    [
        ("Casual Shoes", "footwear"),
        ("Women > Clothing > Tops", "top"),
        ("Men / Shoes / Ankle Boots", "boots"),
        ("skinny jeans", "jeans"),
    ],
)
def test_a_label_the_taxonomy_reads_maps_by_name(category: str, garment: str) -> None:
    mapping = map_category(category)
    assert (mapping.garment, mapping.how, mapping.votes, mapping.share) == (garment, "name", 0, 0)


def test_the_name_reports_how_many_crops_agree_with_it() -> None:
    mapping = map_category("Tops", votes={"t-shirt": 3, "shirt": 3, "trousers": 2})
    assert (mapping.garment, mapping.how, mapping.votes, mapping.share) == ("top", "name", 8, 0.75)


def test_labels_in_another_language_map_by_the_crops_votes() -> None:
    hosen = map_category("Hosen", votes={"jeans": 3, "trousers": 5, "top": 1})
    assert (hosen.garment, hosen.how, hosen.votes) == ("trousers", "votes", 9)
    assert hosen.share == pytest.approx(8 / 9)
    shoes = map_category("Chaussures", votes={"footwear": 2, "sandals": 2, "boots": 1})
    assert (shoes.garment, shoes.how, shoes.share) == ("footwear", "votes", 1.0)


def test_votes_count_by_parent_first_and_a_tie_within_it_reports_the_parent() -> None:
    # 4 bottoms against 3 tops: bottom wins although 'top' is the single most voted class.
    mapping = map_category("Hosen", votes={"jeans": 2, "trousers": 2, "top": 3})
    assert (mapping.garment, mapping.how) == ("bottom", "votes")
    assert mapping.share == pytest.approx(4 / 7)


def test_a_label_that_names_no_garment_gets_no_class_whatever_its_crops_look_like() -> None:
    perfume = map_category("Perfume and Body Mist", votes={"outerwear": 4, "bag": 1})
    assert perfume == CategoryMapping("Perfume and Body Mist", None, "not a garment", 5, 0.0)
    pinned = map_category("Perfume and Body Mist", override="bag", votes={"bag": 1})
    assert (pinned.garment, pinned.how) == ("bag", "operator")  # the operator still decides


def test_products_without_a_category_map_by_their_votes() -> None:
    mapping = map_category(None, votes={"dress": 4})
    assert mapping == CategoryMapping(None, "dress", "votes", votes=4, share=1.0)


@pytest.mark.parametrize(
    "votes",
    [
        {},
        {"trousers": 2},  # too few
        {"trousers": 2, "dress": 2},  # a tie between parents
        {"trousers": 2, "dress": 2, "bag": 1},  # no parent holds half
    ],
)
def test_too_few_votes_or_no_majority_is_unknown(votes: dict[str, int]) -> None:
    mapping = map_category("Neuheiten", votes=votes)
    assert (mapping.garment, mapping.how, mapping.votes) == (None, "unknown", sum(votes.values()))


def test_the_thresholds_can_be_set() -> None:
    assert map_category("Hosen", votes={"trousers": 2}, min_votes=2).how == "votes"
    votes = {"trousers": 2, "dress": 1, "bag": 1}
    assert map_category("Hosen", votes=votes).how == "votes"
    assert map_category("Hosen", votes=votes, min_share=0.6).how == "unknown"


def test_votes_that_name_no_class_are_not_counted() -> None:
    mapping = map_category("Hosen", votes={"trousers": 3, "perfume": 5, "dress": 0})
    assert (mapping.garment, mapping.votes, mapping.share) == ("trousers", 3, 1.0)


def test_an_override_must_be_a_taxonomy_class() -> None:
    with pytest.raises(ValueError, match="'Hosen' is not a garment class") as raised:
        map_category("Hosen", override="Hosen")
    assert all(garment.name in str(raised.value) for garment in CLASSES)
    assert class_named("Sneakers").name == "footwear"
