"""One garment taxonomy for every label in the house: shop categories, the classifier's and the
detector's classes, dataset labels.

Two levels: a :class:`GarmentClass` (``t-shirt``, ``jeans``, ``boots`` ...) belongs to a parent
(``top``, ``bottom``, ``footwear`` ...); every parent is a class of its own too, for labels as
coarse as the parent (``Topwear``, ``Bottomwear``, the detector's ``bottom``).
:func:`garment_class` reads any spelling: case, plurals, punctuation, nested paths
(``"Women > Clothing > Tops"``), qualified names (``"Casual Shoes"``) and common synonyms.

:func:`map_category` decides which class a shop's category means: the operator's override,
else the taxonomy reading of the label, else the majority vote of the garment classifier over
the category's crops (the same classifier that reads a shopper's photo). A label the taxonomy
reads as no garment at all (perfume, deodorant, a football: :func:`is_not_garment`) is never
voted into a class: its products stay out of every garment-scoped search.
Pure data and functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "CLASSES",
    "PARENTS",
    "TARGET_PARENTS",
    "CategoryMapping",
    "GarmentClass",
    "MappingHow",
    "class_named",
    "garment_class",
    "is_not_garment",
    "map_category",
    "normalise",
    "parent",
    "read_classes",
]


@dataclass(frozen=True)
class GarmentClass:
    """A garment class: its name, its parent (the top level) and the labels that mean it."""

    name: str
    parent: str
    synonyms: tuple[str, ...] = ()

    @property
    def is_parent(self) -> bool:
        return self.name == self.parent


def _c(name: str, parent: str, synonyms: str) -> GarmentClass:
    return GarmentClass(name, parent, tuple(s.strip() for s in synonyms.split(",") if s.strip()))


CLASSES: Final[tuple[GarmentClass, ...]] = (
    _c(
        "top",
        "top",
        "tops, topwear, blouse, tunic, bodysuit, camisole, tank top, crop top, vest, kurta, "
        "kurti, kurta set, dupatta, polo, upper body",
    ),
    _c("t-shirt", "top", "t shirt, tshirt, tee, tees"),
    _c("shirt", "top", "shirts, button down"),
    _c("sweater", "top", "jumper, sweatshirt, hoodie, pullover, knitwear, fleece"),
    _c("bottom", "bottom", "bottoms, bottomwear, lower body"),
    _c(
        "trousers",
        "bottom",
        "pants, trouser, chinos, slacks, joggers, track pants, capris, churidar, salwar, cargo "
        "pants, tracksuit, tracksuits",
    ),
    _c("jeans", "bottom", "jean, denim"),
    _c("shorts", "bottom", "short, bermuda"),
    _c("leggings", "bottom", "legging, jeggings"),
    _c("skirt", "bottom", "skirts, miniskirt"),
    _c("dress", "dress", "dresses, gown, romper, jumpsuit, playsuit, sundress, frock, saree, sari"),
    _c("outerwear", "outerwear", "outer, outerwear and coats"),
    _c("coat", "outerwear", "coats, parka, trench, overcoat, raincoat, cape, poncho"),
    _c(
        "jacket",
        "outerwear",
        "jackets, blazer, suit, bomber, windcheater, anorak, cardigan, shrug, waistcoat, gilet",
    ),
    _c(
        "footwear",
        "footwear",
        "shoe, shoes, sneakers, sneaker, trainers, loafers, loafer, heels, heel, pumps, flats, "
        "derby, oxfords, brogues, moccasins, espadrilles, clogs, mules",
    ),
    _c("boots", "footwear", "boot, booties, wellingtons"),
    _c("sandals", "footwear", "sandal, flip flops, flip flop, slippers, slides, thong sandals"),
    _c(
        "bag",
        "bag",
        "bags, handbag, purse, tote, clutch, backpack, rucksack, satchel, pouch, wallet, wallets, "
        "duffel, duffle, luggage, briefcase, crossbody, shoulder bag",
    ),
    _c(
        "hat",
        "hat",
        "hats, cap, caps, headwear, beanie, beret, fedora, trilby, headband, bucket hat, sun hat, "
        "cloche",
    ),
    _c("eyewear", "eyewear", "sunglasses, glasses, spectacles, eyeglasses, frames"),
    _c("legwear", "legwear", "socks, sock, stockings, stocking, tights, hosiery, pantyhose"),
    _c(
        "accessory",
        "accessory",
        "accessories, scarf, scarves, muffler, stole, shawl, tie, ties, bow tie, gloves, glove, "
        "mittens, umbrella, accessory gift set, travel accessory, shoe accessories, keychain",
    ),
    _c("belt", "accessory", "belts"),
    _c(
        "jewellery",
        "jewellery",
        "jewelry, bracelet, necklace, chain, earrings, earring, ring, rings, watch, watches, "
        "cufflinks, brooch, pendant, bangle, anklet",
    ),
    _c(
        "innerwear",
        "innerwear",
        "intimate, intimates, lingerie, underwear, bra, briefs, boxers, trunk, trunks, innerwear "
        "vests, swimwear, swimsuit, bikini, nightwear, sleepwear, loungewear and nightwear, "
        "nightdress, night suits, pyjamas, pajamas",
    ),
)
"""Every class; parents have their own name as parent."""

NOT_GARMENT_WORDS: Final[frozenset[str]] = frozenset({
    "perfume", "fragrance", "deodorant", "cologne", "parfum", "mist", "grooming", "beauty",
    "cosmetic", "makeup", "lipstick", "lip", "nail", "skincare", "lotion", "cream", "soap",
    "moisturiser", "moisturizer", "shampoo", "candle", "decor", "kitchen", "gift", "toy",
    "football", "basketball", "sporting", "equipment", "book", "phone", "electronic", "care",
    "free",
})  # fmt: skip
"""Words of shop labels that name no garment (singular, lower case)."""

PARENTS: Final[tuple[str, ...]] = tuple(c.name for c in CLASSES if c.is_parent)
"""The top level, in display order."""

TARGET_PARENTS: Final[tuple[str, ...]] = ("top", "bottom", "dress", "outerwear", "footwear", "bag")
"""The parents the quality targets are set for (what the detector is trained to find)."""

_SEPARATORS = re.compile(r"\s*(?:>|/|\||»|›|::)\s*")
_JUNK = re.compile(r"[^a-z0-9]+")


def normalise(label: str) -> str:
    """Lower case, ``&`` as ``and``, every other run of punctuation a single space."""
    return _JUNK.sub(" ", label.lower().replace("&", " and ")).strip()


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


@lru_cache(maxsize=1)
def _lookup() -> dict[str, GarmentClass]:
    table: dict[str, GarmentClass] = {}
    for garment in CLASSES:
        for spelling in (garment.name, *garment.synonyms):
            key = normalise(spelling)
            if key in table and table[key] is not garment:
                raise ValueError(f"{spelling!r} means both {table[key].name} and {garment.name}")
            table[key] = garment
    return table


def _phrase_class(phrase: str) -> GarmentClass | None:
    """The class of one phrase: as written, singular, then its head noun (the last words:
    ``casual shoes`` -> ``shoes``, ``t shirt dress`` -> ``dress``)."""
    table = _lookup()
    words = phrase.split()
    for start in range(len(words)):
        tail = words[start:]
        for candidate in (" ".join(tail), " ".join([*tail[:-1], _singular(tail[-1])])):
            found = table.get(candidate) or table.get(candidate.replace(" ", ""))
            if found is not None:
                return found
    return None


def garment_class(label: str | None) -> GarmentClass | None:
    """The class a shop, dataset or model label means, or ``None`` (no garment, or unknown).

    A nested path is read from its most specific part: ``"Women > Clothing > Tops"`` -> top.
    """
    if not label:
        return None
    for part in reversed(_SEPARATORS.split(label)):
        phrase = normalise(part)
        if phrase:
            found = _phrase_class(phrase)
            if found is not None:
                return found
    return None


def parent(label: str | GarmentClass | None) -> str | None:
    """The top-level parent of a class or a label (``"Skinny Jeans"`` -> ``"bottom"``)."""
    garment = label if isinstance(label, GarmentClass) else garment_class(label)
    return garment.parent if garment is not None else None


@lru_cache(maxsize=256)
def _model_class(name: str) -> GarmentClass | None:
    return garment_class(name)


def read_classes(probabilities: Mapping[str, float]) -> dict[str, float]:
    """A classifier's probabilities (``{model class: probability}``) in the taxonomy's names,
    most probable first (ties in the model's order): the one reading of a model's classes that
    the catalog's crop votes and a shopper's search scope share. A class the taxonomy cannot
    read is left out, its mass too; two model classes read as one class add up."""
    read: dict[str, float] = {}
    for name, probability in probabilities.items():
        known = _model_class(name)
        if known is not None:
            read[known.name] = read.get(known.name, 0.0) + probability
    return dict(sorted(read.items(), key=lambda item: -item[1]))


def is_not_garment(label: str | None) -> bool:
    """Whether ``label`` names something that is no garment: no class reads from it and one of
    its words is a :data:`NOT_GARMENT_WORDS` one (``"Perfume and Body Mist"``, ``"Beauty >
    Fragrance"``; ``"Football Shoes"`` is footwear)."""
    if not label or garment_class(label) is not None:
        return False
    words = {_singular(w) for part in _SEPARATORS.split(label) for w in normalise(part).split()}
    return not words.isdisjoint(NOT_GARMENT_WORDS)


def class_named(label: str) -> GarmentClass:
    """The class ``label`` names, in any spelling :func:`garment_class` reads (``"Pants"`` ->
    trousers); a :class:`ValueError` listing the class names when it names none."""
    found = garment_class(label)
    if found is None:
        names = ", ".join(c.name for c in CLASSES)
        raise ValueError(f"{label!r} is not a garment class; the classes are: {names}")
    return found


MappingHow = Literal["operator", "name", "not a garment", "votes", "unknown"]


@dataclass(frozen=True)
class CategoryMapping:
    """The garment class a shop category means, and how that was decided.

    ``how``: ``operator`` (the source's ``garment_map`` pins it), ``name`` (the taxonomy reads
    the label), ``not a garment`` (the label names no garment: no class, whatever the votes),
    ``votes`` (most of the category's crops were classified as it) or ``unknown``.
    ``votes``: the crops' votes counted (whatever decided); ``share``: the fraction of them
    whose parent is the parent of ``garment`` (for ``unknown``: of the most voted parent), so
    the operator sees when the crops disagree with a name or an override.
    """

    category: str | None
    garment: str | None
    how: MappingHow
    votes: int
    share: float

    @property
    def parent(self) -> str | None:
        return parent(self.garment)


def map_category(
    category: str | None,
    *,
    override: str | None = None,
    votes: Mapping[str, int] | None = None,
    min_votes: int = 3,
    min_share: float = 0.5,
) -> CategoryMapping:
    """The garment class of a shop category.

    The operator's ``override`` wins (a class name in any spelling :func:`garment_class`
    reads; anything else is a :class:`ValueError`); else the taxonomy reading of the label
    (``"Casual Shoes"`` -> footwear, ``"Women > Clothing > Tops"`` -> top); no class for a
    label that names no garment (:func:`is_not_garment`); else the majority
    of the crops' ``votes`` ({class: crops}): at least ``min_votes`` votes, counted by parent
    first (``jeans`` and ``trousers`` both vote ``bottom``), and the winning parent holds at
    least ``min_share`` of them and no other parent as many. The class reported is the most
    voted one within that parent, or the parent itself when that is tied. Else ``unknown``.
    A category of ``None`` (products without one) is decided by its votes alone.
    """
    tally = _tally(votes or {})
    total = sum(tally.values())
    by_parent: dict[str, int] = {}
    for garment, count in tally.items():
        by_parent[garment.parent] = by_parent.get(garment.parent, 0) + count

    def share_of(parent_name: str | None) -> float:
        return by_parent.get(parent_name or "", 0) / total if total else 0.0

    if override is not None:
        pinned = class_named(override)
        return CategoryMapping(category, pinned.name, "operator", total, share_of(pinned.parent))
    named = garment_class(category)
    if named is not None:
        return CategoryMapping(category, named.name, "name", total, share_of(named.parent))
    if is_not_garment(category):
        return CategoryMapping(category, None, "not a garment", total, 0.0)
    ranked = sorted(by_parent.items(), key=lambda item: -item[1])
    if not ranked:
        return CategoryMapping(category, None, "unknown", 0, 0.0)
    top_parent, top_count = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == top_count
    share = top_count / total
    if total < min_votes or tied or share < min_share:
        return CategoryMapping(category, None, "unknown", total, share)
    within = sorted(
        ((garment, count) for garment, count in tally.items() if garment.parent == top_parent),
        key=lambda item: -item[1],
    )
    best = within[0][0].name if len(within) == 1 or within[1][1] < within[0][1] else top_parent
    return CategoryMapping(category, best, "votes", total, share)


def _tally(votes: Mapping[str, int]) -> dict[GarmentClass, int]:
    """Votes by class; labels that name no class and counts below one are left out."""
    tally: dict[GarmentClass, int] = {}
    for label, count in votes.items():
        garment = garment_class(label)
        if garment is not None and count > 0:
            tally[garment] = tally.get(garment, 0) + count
    return tally
