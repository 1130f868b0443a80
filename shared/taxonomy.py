"""One garment taxonomy for every label in the house: shop categories, the classifier's and the
detector's classes, dataset labels.

Two levels: a :class:`GarmentClass` (``t-shirt``, ``jeans``, ``boots`` ...) belongs to a parent
(``top``, ``bottom``, ``footwear`` ...); every parent is a class of its own too, for labels as
coarse as the parent (``Topwear``, ``Bottomwear``, the detector's ``bottom``).
:func:`garment_class` reads any spelling: case, plurals, punctuation, nested paths
(``"Women > Clothing > Tops"``), qualified names (``"Casual Shoes"``) and common synonyms.
Pure data and functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "CLASSES",
    "PARENTS",
    "TARGET_PARENTS",
    "GarmentClass",
    "garment_class",
    "normalise",
    "parent",
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
