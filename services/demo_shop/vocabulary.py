"""Fixed vocabularies of the demo shop: categories, colours, patterns, views, availability."""

from __future__ import annotations

from typing import Final

CATEGORIES: Final[tuple[str, ...]] = (
    "tops",
    "outerwear",
    "dresses",
    "skirts",
    "pants",
    "footwear",
    "bags",
    "hats",
)
"""Garment categories, in the order the home page lists them."""

UPPER_BODY: Final[frozenset[str]] = frozenset({"tops", "outerwear", "dresses"})
LOWER_BODY: Final[frozenset[str]] = frozenset({"skirts", "pants"})

COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "black": (32, 32, 34),
    "white": (236, 236, 232),
    "grey": (128, 128, 130),
    "navy": (28, 42, 92),
    "blue": (46, 104, 196),
    "red": (196, 32, 40),
    "burgundy": (112, 24, 44),
    "pink": (232, 128, 164),
    "green": (40, 136, 72),
    "olive": (104, 110, 44),
    "yellow": (236, 196, 40),
    "orange": (232, 112, 32),
    "beige": (214, 192, 156),
    "brown": (110, 70, 40),
    "purple": (104, 56, 144),
}
"""Colour names (as the shop and schema.org ``color`` spell them) and their base RGB."""

PATTERNS: Final[tuple[str, ...]] = ("solid", "stripes", "dots", "checks", "gradient")

PATTERN_ADJECTIVES: Final[dict[str, str]] = {
    "solid": "",
    "stripes": "Striped",
    "dots": "Polka-Dot",
    "checks": "Checked",
    "gradient": "Ombré",
}

VIEWS: Final[tuple[str, ...]] = ("front", "back", "detail")

AVAILABILITY: Final[tuple[str, ...]] = ("InStock", "OutOfStock", "LimitedAvailability", "PreOrder")
"""schema.org ItemAvailability names; the full URL is ``https://schema.org/<name>``."""

NOUNS: Final[dict[str, tuple[str, ...]]] = {
    "tops": ("T-Shirt", "Blouse", "Sweater", "Shirt", "Top"),
    "outerwear": ("Coat", "Jacket", "Parka", "Trench Coat", "Blazer"),
    "dresses": ("Midi Dress", "Maxi Dress", "Shift Dress", "Wrap Dress", "Sundress"),
    "skirts": ("Mini Skirt", "Pleated Skirt", "Pencil Skirt", "A-Line Skirt"),
    "pants": ("Trousers", "Jeans", "Chinos", "Wide-Leg Pants", "Cargo Pants"),
    "footwear": ("Sneakers", "Boots", "Loafers", "Ankle Boots", "Derby Shoes"),
    "bags": ("Tote Bag", "Shoulder Bag", "Handbag", "Crossbody Bag", "Backpack"),
    "hats": ("Fedora", "Bucket Hat", "Sun Hat", "Trilby", "Cloche Hat"),
}

MATERIALS: Final[dict[str, tuple[str, ...]]] = {
    "tops": ("Cotton", "Linen", "Jersey", "Silk", "Merino"),
    "outerwear": ("Wool", "Cotton", "Quilted", "Suede", "Tweed"),
    "dresses": ("Cotton", "Satin", "Jersey", "Linen", "Chiffon"),
    "skirts": ("Denim", "Wool", "Satin", "Cotton", "Corduroy"),
    "pants": ("Denim", "Cotton", "Linen", "Wool", "Corduroy"),
    "footwear": ("Leather", "Suede", "Canvas", "Nubuck"),
    "bags": ("Leather", "Canvas", "Nylon", "Suede"),
    "hats": ("Felt", "Straw", "Cotton", "Wool"),
}

PRICE_RANGES: Final[dict[str, tuple[int, int]]] = {
    "tops": (15, 70),
    "outerwear": (80, 320),
    "dresses": (35, 180),
    "skirts": (25, 110),
    "pants": (30, 140),
    "footwear": (45, 220),
    "bags": (30, 260),
    "hats": (15, 90),
}
"""Price range in whole currency units per category."""

BRANDS: Final[tuple[str, ...]] = (
    "Northwind",
    "Atelier Lune",
    "Koru",
    "Mistral & Co",
    "Fjell",
    "Casa Verde",
    "Urban Loom",
    "Halden",
    "Saffron Street",
    "Bluebird",
)
