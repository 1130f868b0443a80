"""A photo's detections as the garments a shopper sees: shoe pairs joined, a box inside its own
class's box and a dress's upper half dropped, the most prominent garment first."""

from __future__ import annotations

import pytest

from services.detector.postprocess import by_prominence, merge_garments, prominence
from shared.detection import Detection

pytestmark = pytest.mark.unit

W, H = 400, 600


def _d(category: str, box: tuple[float, float, float, float], score: float = 0.8) -> Detection:
    return Detection(box=box, category=category, score=score)


TROUSERS = _d("bottom", (120.0, 250.0, 280.0, 540.0), 0.6)
LEFT_SHOE = _d("footwear", (130.0, 545.0, 190.0, 590.0), 0.9)
RIGHT_SHOE = _d("footwear", (210.0, 548.0, 272.0, 596.0), 0.85)
DRESS = _d("dress", (110.0, 100.0, 290.0, 520.0), 0.7)
BODICE = _d("top", (120.0, 110.0, 280.0, 290.0), 0.65)


def test_prominence_weighs_area_score_and_centrality() -> None:
    centre = _d("top", (150.0, 250.0, 250.0, 350.0), 0.9)
    corner = _d("top", (0.0, 0.0, 100.0, 150.0), 0.9)
    weak = _d("top", (150.0, 250.0, 250.0, 350.0), 0.25)
    share = 100 * 100 / (W * H)
    assert prominence(centre, W, H) == pytest.approx(share)
    assert prominence(weak, W, H) == pytest.approx(share / 2)  # half of the full score
    # its centre is 3/4 of the way to the edge: 1 - 0.5 * 0.75
    assert prominence(corner, W, H) == pytest.approx(1.5 * share * 0.625)
    # a confident score counts no more than 0.5 does
    assert prominence(_d("top", centre.box, 0.5), W, H) == prominence(centre, W, H)


def test_groups_come_most_prominent_first() -> None:
    """Shoes found with more confidence than the trousers still come after them."""
    ordered = by_prominence([LEFT_SHOE, RIGHT_SHOE, TROUSERS], W, H)
    assert ordered[0] == TROUSERS
    assert by_prominence([], W, H) == []


def test_a_pair_of_shoes_is_one_garment() -> None:
    [trousers, pair] = merge_garments([TROUSERS, LEFT_SHOE, RIGHT_SHOE])
    assert trousers == TROUSERS
    assert pair.category == "footwear" and pair.score == 0.9
    assert pair.box == (130.0, 545.0, 272.0, 596.0)
    # in the place of the better-scored shoe
    order = [d.category for d in merge_garments([RIGHT_SHOE, TROUSERS, LEFT_SHOE])]
    assert order == ["bottom", "footwear"]


@pytest.mark.parametrize(
    "other",
    [
        _d("footwear", (330.0, 545.0, 390.0, 590.0)),  # far apart
        _d("footwear", (200.0, 420.0, 260.0, 465.0)),  # at another height
        _d("footwear", (200.0, 545.0, 230.0, 565.0)),  # much smaller
        _d("bag", (200.0, 545.0, 260.0, 590.0)),  # no shoe
    ],
)
def test_boxes_that_are_no_pair_stay_apart(other: Detection) -> None:
    assert merge_garments([LEFT_SHOE, other]) == [LEFT_SHOE, other]


def test_three_shoes_make_a_pair_and_a_shoe() -> None:
    third = _d("footwear", (280.0, 546.0, 340.0, 592.0), 0.5)
    merged = merge_garments([LEFT_SHOE, RIGHT_SHOE, third])
    assert len(merged) == 2 and merged[1] == third


def test_a_box_inside_a_box_of_its_own_class_is_dropped() -> None:
    inner = _d("bottom", (140.0, 300.0, 260.0, 500.0), 0.9)
    assert merge_garments([inner, TROUSERS]) == [TROUSERS]
    # another class inside stays (a bag held in front of the trousers)
    bag = _d("bag", (140.0, 300.0, 260.0, 500.0), 0.9)
    assert merge_garments([bag, TROUSERS]) == [bag, TROUSERS]


def test_a_top_in_a_dress_upper_half_is_no_garment_of_its_own() -> None:
    assert merge_garments([BODICE, DRESS]) == [DRESS]
    # a top reaching below the dress's middle is a top over it (a jacket-like top) and stays
    long_top = _d("top", (120.0, 110.0, 280.0, 420.0))
    assert merge_garments([long_top, DRESS]) == [long_top, DRESS]


def test_a_dress_whose_lower_half_is_a_skirt_keeps_its_top() -> None:
    skirt = _d("bottom", (112.0, 300.0, 288.0, 525.0), 0.6)
    assert merge_garments([BODICE, DRESS, skirt]) == [BODICE, DRESS, skirt]
    # so does a "dress" the detector is less sure of than of the top
    unsure = _d("dress", DRESS.box, 0.4)
    assert merge_garments([BODICE, unsure]) == [BODICE, unsure]
