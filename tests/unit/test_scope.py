"""The query's garment scope: the detector's class and the classifier's blended in the shared
taxonomy."""

from __future__ import annotations

import pytest

from shared.scope import decide, label, parent_probabilities, unlikely_classes

pytestmark = pytest.mark.unit

SURE = {"detector_weight": 0.5, "threshold": 0.8, "max_parents": 2}


def test_classifier_names_are_read_as_taxonomy_parents() -> None:
    # The street classifier's names: pants and skirts are both bottoms; bags -> bag.
    assert parent_probabilities({"pants": 0.5, "skirts": 0.3, "bags": 0.15, "??": 0.05}) == {
        "bottom": 0.8,
        "bag": 0.15,
    }


def test_detector_and_classifier_agreeing_search_one_class_named_finely() -> None:
    scope = decide("bottom", {"pants": 0.7, "tops": 0.3}, **SURE)
    assert scope.parents == ("bottom",)
    assert scope.garment == "trousers" and scope.probability == pytest.approx(0.85)


def test_disagreement_searches_the_top_two_most_probable_first() -> None:
    # The detector saw a box at the feet; the crop classifier thought leggings.
    scope = decide("footwear", {"leggings": 0.9, "footwear": 0.1}, **SURE)
    assert scope.parents == ("footwear", "bottom")
    assert scope.garment == "footwear"


def test_one_view_alone_decides() -> None:
    product_shot = decide(None, {"bags": 0.95, "hats": 0.05}, **SURE)
    assert product_shot.parents == ("bag",) and product_shot.garment == "bag"
    no_classifier = decide("dress", {}, **SURE)
    assert no_classifier.parents == ("dress",) and no_classifier.probability == 1.0
    nothing = decide(None, {}, **SURE)
    assert nothing.parents == () and nothing.garment is None


def test_weights_at_the_ends() -> None:
    only_detector = decide("top", {"dresses": 1.0}, **{**SURE, "detector_weight": 1.0})
    assert only_detector.parents == ("top",)
    only_classifier = decide("top", {"dresses": 1.0}, **{**SURE, "detector_weight": 0.0})
    assert only_classifier.parents == ("dress",)


def test_labels_read_as_words() -> None:
    assert label("t-shirt") == "T-shirt"
    assert label("dress", plural=True) == "Dresses"
    assert label("footwear", plural=True) == "Footwear"
    assert label("bag", plural=True) == "Bags"
    assert label(None) is None


def test_a_product_shots_nearest_catalog_products_vote_a_street_crops_do_not() -> None:
    shot = decide(
        None,
        {"tops": 0.6, "dresses": 0.4},
        neighbours=["dress", "dress", "dress", "top", None],
        detector_weight=0.5,
        neighbour_weight=0.7,
        threshold=0.8,
        max_parents=2,
    )
    assert (
        shot.parents == ("dress", "top")
        and shot.shares[0] > 0.6
        and shot.shares[0] + shot.shares[1] == pytest.approx(1.0)
    )
    street = decide(
        "top",
        {"tops": 0.6, "dresses": 0.4},
        neighbours=["dress"] * 5,
        detector_weight=0.5,
        neighbour_weight=0.7,
        threshold=0.8,
        max_parents=2,
    )
    assert street.parents == ("top",) and street.probability == pytest.approx(0.8)


def test_finer_classes_the_classifier_all_but_rules_out_are_unlikely() -> None:
    street = {"pants": 0.82, "skirts": 0.03, "leggings": 0.12, "tops": 0.03}
    scope = decide("bottom", street, **SURE, unlikely_below=0.1)
    assert scope.garment == "trousers" and scope.unlikely == ("skirt",)
    assert decide("bottom", street, **SURE).unlikely == ()  # 0: off
    # Parent-level classes (tops) are never unlikely, nor classes of parents not searched.
    assert unlikely_classes(street, ["top"], 0.5) == ()
    assert unlikely_classes(street, ["bottom"], 0.5) == ("leggings", "skirt")
    # Two names of one class count together.
    assert unlikely_classes({"skirts": 0.06, "skirt": 0.06}, ["bottom"], 0.1) == ()
