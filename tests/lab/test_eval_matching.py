"""Scoring an answer against ground-truth boxes: IoU matching, duplicates, spurious, hit@10."""

from __future__ import annotations

import pytest

from lab.evaluate.matching import GroupAnswer, iou, score_photo

pytestmark = pytest.mark.unit

SHIRT = (0.0, 0.0, 100.0, 100.0)
JEANS = (0.0, 100.0, 100.0, 300.0)


def test_iou() -> None:
    assert iou(SHIRT, SHIRT) == 1.0
    assert iou(SHIRT, JEANS) == 0.0  # touching, no overlap
    assert iou(SHIRT, (50.0, 0.0, 150.0, 100.0)) == pytest.approx(1 / 3)
    assert iou(SHIRT, (0.0, 0.0, 0.0, 0.0)) == 0.0


def test_found_right_class_and_hit() -> None:
    groups = [
        GroupAnswer((0, 0, 100, 90), "tops", ("tops",), ("Tshirts",) * 5 + ("Jeans",) * 5),
        GroupAnswer((0, 110, 100, 300), "skirts", ("skirts", "Jeans"), ("Tshirts",) * 10),
    ]
    score = score_photo([("t-shirt", SHIRT), ("jeans", JEANS)], groups)
    shirt, jeans = score.truths
    assert (shirt.parent, shirt.found, shirt.class_right, shirt.hit) == ("top", True, True, True)
    assert shirt.iou == pytest.approx(0.9) and shirt.same_in_top == 5
    # skirt and jeans share the parent "bottom": right class, but its products are tops
    assert (jeans.found, jeans.class_right, jeans.searched_right, jeans.hit) == (
        True,
        True,
        True,
        False,
    )
    assert score.spurious == 0 and score.groups == 2


def test_below_the_iou_threshold_is_not_found_and_spurious() -> None:
    score = score_photo([("shirt", SHIRT)], [GroupAnswer((60, 0, 160, 100), "tops")])
    [truth] = score.truths
    assert not truth.found and not truth.hit and not truth.class_right
    assert score.spurious == 1


def test_duplicates_count_extra_groups_on_one_box_and_the_best_one_is_scored() -> None:
    groups = [
        GroupAnswer((0, 0, 100, 60), "dresses", (), ("Dresses",) * 10),  # IoU 0.6
        GroupAnswer((0, 0, 100, 95), "tops", (), ("Shirts",) * 10),  # IoU 0.95
        GroupAnswer((200, 200, 300, 300), "bags"),
    ]
    score = score_photo([("blouse", SHIRT)], groups)
    [truth] = score.truths
    assert truth.duplicates == 1 and truth.iou == pytest.approx(0.95)
    assert truth.class_right and truth.hit
    assert score.spurious == 1


def test_hit_needs_five_of_the_top_ten() -> None:
    four = ("Shirts",) * 4 + ("Heels",) * 6
    late = ("Heels",) * 10 + ("Shirts",) * 5  # beyond the top 10
    for products in (four, late):
        [truth] = score_photo([("shirt", SHIRT)], [GroupAnswer(SHIRT, "tops", (), products)]).truths
        assert truth.found and not truth.hit


def test_no_groups_and_no_truth() -> None:
    assert score_photo([("shirt", SHIRT)], []).truths[0].found is False
    assert score_photo([], [GroupAnswer(SHIRT, "tops")]).spurious == 1


def test_the_class_level_count_needs_the_very_class() -> None:
    skirts_for_jeans = ("Skirts",) * 6 + ("Jeans",) * 4
    [jeans] = score_photo(
        [("jeans", JEANS)], [GroupAnswer(JEANS, "pants", ("bottom",), skirts_for_jeans)]
    ).truths
    assert jeans.hit and jeans.same_in_top == 10  # the parent figure counts the skirts
    assert (jeans.garment, jeans.same_class_in_top) == ("jeans", 4)
    [pants] = score_photo(
        [("pants", JEANS)], [GroupAnswer(JEANS, "pants", (), ("Trousers",) * 10)]
    ).truths
    assert (pants.garment, pants.same_class_in_top) == ("trousers", 10)
    [blouse] = score_photo(
        [("blouse", SHIRT)], [GroupAnswer(SHIRT, "tops", (), ("Tops",) * 10)]
    ).truths
    assert blouse.garment is None and blouse.hit  # "blouse" reads as the parent "top"
    [missed] = score_photo([("skirt", JEANS)], []).truths
    assert (missed.garment, missed.found, missed.same_class_in_top) == ("skirt", False, 0)


LEFT_SHOE = (20.0, 300.0, 48.0, 330.0)
RIGHT_SHOE = (52.0, 300.0, 80.0, 330.0)


def test_one_group_around_a_pair_of_shoes_finds_both() -> None:
    pair = GroupAnswer((18.0, 298.0, 82.0, 331.0), "shoes", (), ("Sneakers",) * 10)
    score = score_photo([("shoes", LEFT_SHOE), ("shoes", RIGHT_SHOE)], [pair])
    assert [t.found for t in score.truths] == [True, True]
    assert all(t.hit and t.class_right for t in score.truths)
    assert score.spurious == 0
    # the pair's box is no match for two boxes of other classes
    other = score_photo([("bag", LEFT_SHOE), ("belt", RIGHT_SHOE)], [pair])
    assert [t.found for t in other.truths] == [False, False] and other.spurious == 1


def test_main_first_asks_whether_the_largest_box_leads_the_answer() -> None:
    truth = [("shoes", LEFT_SHOE), ("jeans", JEANS), ("shirt", SHIRT)]
    jeans, shoe = GroupAnswer(JEANS, "pants"), GroupAnswer(LEFT_SHOE, "shoes")
    assert score_photo(truth, [jeans, shoe]).main_first is True
    assert score_photo(truth, [shoe, jeans]).main_first is False
    assert score_photo(truth, [shoe]).main_first is None  # the jeans are not found at all
    assert score_photo([], [shoe]).main_first is None
