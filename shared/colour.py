"""A compact colour descriptor of the garment region, stored beside the CNN embedding.

CNN similarity is dominated by colour for plain items (a seed's finding), so colour gets its own
vector that search can weight up or down. The descriptor is a 40-bin histogram in CIE Lab
read as lightness / chroma / hue, the way people name colours:

* 4 neutral bins (chroma < ~12): black, dark grey, light grey, white;
* 12 hue sectors x 3 lightness levels for chromatic pixels (30 degree sectors, softly split
  between the two nearest sector centres, so a hue on a border does not flip bins).

Pixels are weighted towards the centre (a crop is roughly centred on its garment) and away
from the background colour, estimated from the image border. The histogram is mapped with a
square root and L2-normalised: the dot product of two descriptors is then the Bhattacharyya
coefficient of the two histograms (1 = identical colour distributions), so cosine search works.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.errors import ConfigurationError, InvalidInputError
from shared.images import to_rgb

__all__ = [
    "CATALOG_COLOUR_LABELS",
    "COLOUR_DIM",
    "COLOUR_MODEL_FILE",
    "COLOUR_NAMES",
    "FEATURE_DIM",
    "GRID_SIDE",
    "SHOPPER_COLOURS",
    "ColourModel",
    "ColourName",
    "best_name",
    "colour_descriptor",
    "colour_family_words",
    "colour_features",
    "colour_model",
    "colour_name",
    "colour_similarity",
    "grid_lab",
    "lab_probabilities",
    "label_colour",
    "name_colour",
    "name_lab",
    "named_probabilities",
    "read_colour",
    "rgb_to_lab",
    "same_colour",
    "weighted_descriptor",
]

N_NEUTRAL = 4
N_HUES = 12
N_LIGHTNESS = 3
COLOUR_DIM = N_NEUTRAL + N_HUES * N_LIGHTNESS

_SIZE = 64
GRID_SIDE = _SIZE
"""A crop is read (its colour, its garment mask) squashed to this many pixels a side."""
_CHROMA_LOW, _CHROMA_HIGH = 8.0, 16.0  # below: neutral; above: chromatic; between: both
_NEUTRAL_EDGES = np.array([25.0, 50.0, 75.0])
_LIGHTNESS_EDGES = np.array([35.0, 65.0])
_BACKGROUND_DELTA_E = 12.0
_CENTRE_SIGMA = 0.35  # of the image side


_SRGB_TO_LINEAR = np.where(
    (levels := np.arange(256, dtype=np.float64) / 255.0) <= 0.04045,
    levels / 12.92,
    ((levels + 0.055) / 1.055) ** 2.4,
).astype(np.float32)
"""sRGB decoding of every uint8 level: a lookup instead of a power per pixel."""
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float32,
)  # fmt: skip
_WHITE = np.array([[0.95047], [1.0], [1.08883]], dtype=np.float32)
_RGB_TO_XYZ = np.ascontiguousarray((_SRGB_TO_XYZ / _WHITE).T)
"""Linear sRGB -> XYZ (D65), already divided by the white point."""


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 ``(..., 3)`` -> CIE Lab (D65) float32 ``(..., 3)``."""
    xyz = _SRGB_TO_LINEAR[np.asarray(rgb, dtype=np.uint8)] @ _RGB_TO_XYZ
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


# --------------------------------------------------------------------------- the colour names


@dataclass(frozen=True)
class ColourName:
    """A colour as shoppers name it: its name, the broad colour text search reads it as
    (``navy`` is a ``blue``) and the words that mean it."""

    name: str
    family: str
    words: tuple[str, ...]


COLOUR_NAMES: tuple[ColourName, ...] = (
    ColourName("black", "black", ("black", "jet", "onyx", "charcoal")),
    ColourName("white", "white", ("white", "ivory", "cream", "offwhite")),
    ColourName("grey", "grey", ("grey", "gray", "silver", "slate", "melange")),
    ColourName("navy", "blue", ("navy", "indigo")),
    ColourName("blue", "blue", ("blue", "denim", "cobalt", "teal", "turquoise", "aqua", "sky")),
    ColourName("burgundy", "red", ("burgundy", "maroon", "wine")),
    ColourName("red", "red", ("red", "crimson", "scarlet", "rust")),
    ColourName("olive", "green", ("olive", "khaki")),
    ColourName("green", "green", ("green", "lime", "mint", "emerald", "sage")),
    ColourName("yellow", "yellow", ("yellow", "mustard", "gold", "lemon")),
    ColourName("orange", "orange", ("orange", "coral", "peach", "apricot")),
    ColourName("pink", "pink", ("pink", "rose", "magenta", "fuchsia", "blush")),
    ColourName("purple", "purple", ("purple", "violet", "lavender", "lilac", "mauve", "plum")),
    ColourName("beige", "brown", ("beige", "camel", "taupe", "nude")),
    ColourName("brown", "brown", ("brown", "tan", "chocolate", "coffee")),
)
"""The shopper colour names, their broad colours and synonyms: the one colour vocabulary of
the catalog's labels, the named colour of a crop and a shopper's words (:mod:`shared.words`
reads words onto the broad colours)."""

SHOPPER_COLOURS: tuple[str, ...] = tuple(c.name for c in COLOUR_NAMES)
"""The names :func:`name_colour` answers with, in a fixed order (the model's classes)."""

_NAMED = {c.name: c for c in COLOUR_NAMES}
_WORD_NAMES = {word: c.name for c in COLOUR_NAMES for word in c.words}

CATALOG_COLOUR_LABELS: dict[str, str | None] = {
    "steel": "grey",
    "metallic": None,
    "copper": "brown",
    "bronze": "brown",
    "skin": "beige",
    "multi": None,
}
"""Catalog colour labels that no colour word names (``None``: no one colour, e.g. ``Multi``).
Every other label is read word by word with the shopper vocabulary (:func:`label_colour`)."""


def colour_family_words() -> dict[str, tuple[str, ...]]:
    """Each broad colour and every word that means one of its names (text search's view)."""
    families: dict[str, tuple[str, ...]] = {}
    for colour in COLOUR_NAMES:
        families[colour.family] = families.get(colour.family, ()) + colour.words
    return families


def colour_name(word: str) -> str | None:
    """The shopper colour name a word means (``maroon`` -> ``burgundy``), else ``None``."""
    key = word.strip().casefold()
    if key in _NAMED:
        return key
    return _WORD_NAMES.get(key)


def read_colour(word: str) -> str:
    """A shopper's colour word as its name (:func:`colour_name`); an
    :class:`~shared.errors.InvalidInputError` listing the names for any other word."""
    name = colour_name(word)
    if name is None:
        raise InvalidInputError(
            f"unknown colour {word.strip()!r}: give one of {', '.join(SHOPPER_COLOURS)} (or a "
            "synonym such as maroon, khaki, cream)"
        )
    return name


def named_probabilities(name: str, p: float | None) -> list[float]:
    """The name probabilities of a crop known only by its named colour and the model's
    probability of it (the index keeps those two): the other names share ``1 - p`` evenly."""
    if name not in _NAMED:
        raise InvalidInputError(f"unknown colour name {name!r}")
    known = 1.0 if p is None else min(1.0, max(0.0, float(p)))
    rest = (1.0 - known) / (len(SHOPPER_COLOURS) - 1)
    return [known if other == name else rest for other in SHOPPER_COLOURS]


def same_colour(query: Sequence[float], name: str | None, p: float | None) -> float:
    """The probability that a catalog crop whose colour the model named ``name`` with
    probability ``p`` is the colour of a query garment whose name probabilities are ``query``
    (:data:`SHOPPER_COLOURS` order): the model's other names share ``1 - p`` evenly. A crop
    indexed before colours were named (no name) gets the chance level."""
    if name is None or p is None or name not in _NAMED:
        return 1.0 / len(SHOPPER_COLOURS)
    q = query[SHOPPER_COLOURS.index(name)]
    return p * q + (1.0 - p) * (1.0 - q) / (len(SHOPPER_COLOURS) - 1)


def label_colour(label: str) -> str | None:
    """A catalog's colour label read as a shopper name: ``Navy Blue`` -> ``navy``, ``Off White``
    -> ``white``, ``Steel`` -> ``grey``; ``None`` for a label that names no one colour (empty,
    ``Multi``) or no colour word at all."""
    key = " ".join(label.casefold().split())
    if key in CATALOG_COLOUR_LABELS:
        return CATALOG_COLOUR_LABELS[key]
    if (joined := key.replace(" ", "")) in _WORD_NAMES:
        return _WORD_NAMES[joined]
    return next((_WORD_NAMES[w] for w in re.findall(r"[a-z]+", key) if w in _WORD_NAMES), None)


@functools.lru_cache(maxsize=8)
def _centre_weights(height: int, width: int) -> np.ndarray:
    """A Gaussian bump over the image (read-only; the same for every crop of this size)."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    centre = np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * _CENTRE_SIGMA**2))
    centre.setflags(write=False)
    return centre


def _weights(lab: np.ndarray) -> np.ndarray:
    """Centre-weighted, background-suppressed pixel weights (``(H, W)``, sum > 0)."""
    centre = _centre_weights(*lab.shape[:2])
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    spread = np.median(np.linalg.norm(border - background, axis=1))
    if spread > _BACKGROUND_DELTA_E:
        # A busy border (street crop): no single background colour to suppress.
        return centre
    squared = np.square(lab - background).sum(axis=2)
    foreground = 1.0 - np.exp(squared * (-1.0 / _BACKGROUND_DELTA_E**2))
    weights = centre * foreground
    # An item the colour of its background would vanish: fall back on the centre weights.
    return weights if weights.sum() > 0.05 * centre.sum() else centre


def grid_lab(img: Image.Image) -> np.ndarray:
    """``img`` squashed to ``GRID_SIDE`` x ``GRID_SIDE`` pixels, in CIE Lab (float32)."""
    # BOX averaging (after an integer reduce) is all a 64x64 histogram needs, and several
    # times cheaper than BILINEAR.
    small = to_rgb(img).resize((_SIZE, _SIZE), Image.Resampling.BOX, reducing_gap=1.0)
    return rgb_to_lab(np.asarray(small))


def colour_descriptor(img: Image.Image, lab: np.ndarray | None = None) -> np.ndarray:
    """The 40-d colour descriptor (float32, L2 norm 1) of a garment image or crop (``lab``:
    its :func:`grid_lab`, when the caller has it)."""
    lab = grid_lab(img) if lab is None else lab
    return weighted_descriptor(lab, _weights(lab))


def weighted_descriptor(lab: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The 40-d colour descriptor of Lab pixels ``(H, W, 3)`` counted with ``weights``
    ``(H, W)`` (e.g. a garment mask)."""
    weights = np.asarray(weights, dtype=np.float32).reshape(-1)
    lab = lab.reshape(-1, 3)
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    chromatic = np.clip((chroma - _CHROMA_LOW) / (_CHROMA_HIGH - _CHROMA_LOW), 0.0, 1.0)

    neutral_bin = np.searchsorted(_NEUTRAL_EDGES, lightness)
    # Hue sectors centred on 0, 30, ... degrees; linear split between the two nearest centres.
    position = (np.degrees(np.arctan2(b, a)) % 360.0) / (360.0 / N_HUES)
    lower = np.floor(position).astype(np.int64) % N_HUES
    upper = (lower + 1) % N_HUES
    frac = position - np.floor(position)
    level = np.searchsorted(_LIGHTNESS_EDGES, lightness)
    chromatic_weight = weights * chromatic
    bins = np.concatenate(
        [neutral_bin, N_NEUTRAL + level * N_HUES + lower, N_NEUTRAL + level * N_HUES + upper]
    )
    mass = np.concatenate(
        [weights * (1.0 - chromatic), chromatic_weight * (1.0 - frac), chromatic_weight * frac]
    )
    hist = np.bincount(bins, weights=mass, minlength=COLOUR_DIM).astype(np.float64)

    hist = np.sqrt(hist / max(hist.sum(), 1e-12))
    return (hist / max(np.linalg.norm(hist), 1e-12)).astype(np.float32)


def colour_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two descriptors: 1 for the same colours, 0 for disjoint."""
    return float(np.dot(a, b))


# ------------------------------------------------------------------------------ naming a colour

COLOUR_MODEL_FILE = Path(__file__).with_name("colour_names.json")
"""The shipped colour-naming model and its card (``python -m lab.colour.train`` writes it)."""

_QUANTILES = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
_STAT_SCALE = 50.0
FEATURE_DIM = COLOUR_DIM + 4 * (len(_QUANTILES) + 2)
"""Length of :func:`colour_features`."""


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return np.interp(_QUANTILES, cumulative / cumulative[-1], values[order])


def colour_features(lab: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What the naming model reads of Lab pixels ``(H, W, 3)`` counted with ``weights``
    ``(H, W)`` (the garment mask): the 40-bin descriptor, then for lightness, a, b and chroma
    their weighted 10/25/50/75/90th percentiles, mean and spread (float64, ``FEATURE_DIM``)."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1) + 1e-9
    pixels = lab.reshape(-1, 3).astype(np.float64)
    chroma = np.hypot(pixels[:, 1], pixels[:, 2])
    stats: list[np.ndarray] = []
    for values in (pixels[:, 0], pixels[:, 1], pixels[:, 2], chroma):
        mean = np.average(values, weights=w)
        spread = np.sqrt(np.average((values - mean) ** 2, weights=w))
        stats += [_weighted_quantiles(values, w), np.array([mean, spread])]
    return np.concatenate([weighted_descriptor(lab, weights), np.concatenate(stats) / _STAT_SCALE])


@dataclass(frozen=True)
class ColourModel:
    """A small calibrated classifier over :func:`colour_features`: standardised inputs, dense
    layers with ReLU between them, softmax at ``temperature`` over ``classes``."""

    version: str
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    temperature: float

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(n, FEATURE_DIM)`` features -> ``(n, len(classes))`` probabilities."""
        x = (np.atleast_2d(features) - self.mean) / self.scale
        for index, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if index < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        x = x / self.temperature
        x = np.exp(x - x.max(axis=1, keepdims=True))
        return np.asarray(x / x.sum(axis=1, keepdims=True))

    def as_json(self) -> dict[str, Any]:
        """The model's fields as JSON values (:meth:`from_json` reads them back)."""
        return {
            "version": self.version,
            "classes": list(self.classes),
            "mean": self.mean.round(6).tolist(),
            "scale": self.scale.round(6).tolist(),
            "layers": [
                {"weight": w.round(6).tolist(), "bias": b.round(6).tolist()} for w, b in self.layers
            ],
            "temperature": self.temperature,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "colour model") -> ColourModel:
        """A model from :meth:`as_json`'s fields; a :class:`ConfigurationError` naming
        ``source`` when they do not fit together."""
        try:
            classes = tuple(str(c) for c in data["classes"])
            mean = np.asarray(data["mean"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
            layers = tuple(
                (np.asarray(layer["weight"], np.float64), np.asarray(layer["bias"], np.float64))
                for layer in data["layers"]
            )
            temperature = float(data["temperature"])
            version = str(data["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{source}: not a colour model ({exc})") from exc
        width = FEATURE_DIM
        problems = [] if mean.shape == scale.shape == (width,) else ["mean/scale"]
        for weight, bias in layers:
            if weight.ndim != 2 or weight.shape[0] != width or bias.shape != weight.shape[1:]:
                problems.append(f"layer {weight.shape}")
                break
            width = weight.shape[1]
        if not layers or width != len(classes) or set(classes) - set(SHOPPER_COLOURS):
            problems.append("classes")
        if not temperature > 0 or not np.all(scale > 0):
            problems.append("temperature/scale")
        if problems:
            raise ConfigurationError(f"{source}: the colour model does not fit: {problems}")
        return cls(version, classes, mean, scale, layers, temperature)


@functools.lru_cache(maxsize=1)
def colour_model() -> ColourModel:
    """The shipped colour-naming model (:data:`COLOUR_MODEL_FILE`), loaded once."""
    try:
        card = json.loads(COLOUR_MODEL_FILE.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"{COLOUR_MODEL_FILE}: cannot read the colour model ({exc})"
        ) from exc
    return ColourModel.from_json(card.get("model", {}), str(COLOUR_MODEL_FILE))


def name_lab(lab: np.ndarray, mask: np.ndarray) -> tuple[str, float]:
    """The shopper colour name of a crop's grid Lab (:func:`grid_lab`) under its garment
    ``mask`` (bool, same height and width), and the model's probability of it."""
    return best_name(lab_probabilities(lab, mask))


def best_name(probabilities: np.ndarray) -> tuple[str, float]:
    """The likeliest shopper colour name of :func:`lab_probabilities` and its probability."""
    best = int(np.argmax(probabilities))
    return SHOPPER_COLOURS[best], float(probabilities[best])


def lab_probabilities(lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's probability of each shopper colour name (:data:`SHOPPER_COLOURS` order,
    float64) for a crop's grid Lab under its garment ``mask``."""
    if lab.ndim != 3 or lab.shape[2] != 3 or np.shape(mask) != lab.shape[:2]:
        raise InvalidInputError(
            f"a colour needs Lab pixels (H, W, 3) and a mask (H, W), got {lab.shape} and "
            f"{np.shape(mask)}"
        )
    pixels = np.asarray(mask) > 0
    if not pixels.any():
        raise InvalidInputError("the mask keeps no pixel: there is no colour to name")
    model = colour_model()
    found = model.probabilities(colour_features(lab, pixels.astype(np.float32)))[0]
    probabilities = np.zeros(len(SHOPPER_COLOURS))
    probabilities[[SHOPPER_COLOURS.index(name) for name in model.classes]] = found
    return probabilities


def name_colour(crop: Image.Image, mask: np.ndarray) -> tuple[str, float]:
    """The shopper colour name of a garment crop under its mask (``GarmentMask.pixels``: the
    crop squashed to ``GRID_SIDE`` a side), and its probability."""
    return name_lab(grid_lab(crop), mask)
