"""The public contract of ``POST /recommend`` and ``POST /feedback`` (documented in OpenAPI)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared.colour import SHOPPER_COLOURS, read_colour
from shared.db.models import FeedbackKind
from shared.db.schemas import SHOP_NAME
from shared.errors import InvalidInputError
from shared.vectors import Distance
from shared.words import MAX_QUERY_CHARS, check_query

MAX_ID = 2**53 - 1
"""The largest id the API takes: within the 64-bit integers of the catalog and the index, and
exact in a JavaScript number and in OpenAPI's (floating-point) ``maximum``."""


def _not_bool(value: Any) -> Any:
    """JSON ``true`` is not a number (pydantic's lax mode would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


def _bool_only(value: Any) -> Any:
    """A boolean, or its spelling in a form field or query parameter; never a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("Input should be a valid boolean, not a number")
    return value


ProductId = Annotated[int, Field(ge=1, le=MAX_ID, description="A catalog product id.")]


def _listed(value: Any) -> Any:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; empty parts dropped."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, list):
        cleaned = [str(item).strip() for item in items if str(item).strip()]
        return cleaned or None
    return value


MAX_LISTED = 50
"""The most categories or brands one query may name (more: 422)."""

_SHOP_NAME = re.compile(SHOP_NAME)


def shop_names(value: Any) -> Any:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``: a scope is exact, so an empty name
    (``"a,,b"``, ``""``), a name that is not a string, or one no source could have is refused,
    not dropped (dropping every part would widen the scope to every shop)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("give shop names, comma-separated or as a list")
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"a shop name is a string, not {item!r}")
        name = item.strip()
        if not name:
            raise ValueError("an empty shop name: give names separated by single commas")
        if len(name) > 100 or not _SHOP_NAME.match(name):
            raise ValueError(f"{name[:100]!r} is not a shop name (letters, digits, '_', '.', '-')")
        names.append(name)
    if not names:
        raise ValueError("give at least one shop name (leave shop out for every shop)")
    return list(dict.fromkeys(names))


class RecommendParams(BaseModel):
    """How to search; the same fields as form fields, JSON fields or query parameters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    k: int | None = Field(
        default=None, ge=1, le=100, description="Products per garment (default 12)."
    )
    category: list[str] | None = Field(
        default=None,
        max_length=MAX_LISTED,
        description="Search these categories (comma-separated or a list) instead of the "
        "classifier's prediction.",
    )
    cross_category: bool = Field(
        default=False, description="Search every category instead of the predicted one."
    )
    metric: Distance = "cosine"
    color_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="0: shape only ... 1: colour only; unset: the shop's default "
        "(gateway.color_weight, 0.45).",
    )
    colour: str | None = Field(
        default=None,
        description="Only products of this colour, as shoppers name it: "
        f"{', '.join(SHOPPER_COLOURS)}, or a synonym (maroon, khaki, cream ...); the named "
        "colour of each product's garment. Unknown: 422 listing the names.",
        examples=["navy"],
    )
    colour_mode: Literal["same", "any", "other"] = Field(
        default="same",
        description="same: within the right kind, the garment's own colour first (weighted by "
        "how sure the colour is); any: by shape alone; other: only products of another "
        'colour than the garment\'s ("similar, in another colour").',
    )
    diversity: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Maximal marginal relevance: 0 = off."
    )
    brand: list[str] | None = Field(
        default=None, max_length=MAX_LISTED, description="Any of these brands."
    )
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, min_length=3, max_length=3, examples=["EUR"])
    shop: list[str] | None = Field(
        default=None,
        max_length=MAX_LISTED,
        description="Only these shops' products (source names, comma-separated or a list); "
        "unset: every shop, or the shops of the caller's storefront key. Refused (422): a shop "
        "the catalog does not have; (403): one outside the storefront key's shops.",
        examples=[["acme"]],
    )
    text: str | None = Field(
        default=None,
        description=f"Words (at most {MAX_QUERY_CHARS} characters, any script): alone, the "
        "products whose text (title, brand, category, colour, attributes) matches them and "
        "the garments that look like them (the model's text tower or word bridge), fused by "
        "rank; with a photo or a product_id, they refine its ranking (``text_weight``). Read "
        "as plain "
        "words: markup or SQL is searched for, never run. Refused (422): empty or blank, "
        "longer than the limit, control characters, no letter or digit (emoji only).",
        examples=["navy tee"],
    )
    text_weight: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="With a photo or product_id, how much the words count against the "
        "pictures (fused by rank): 1 as much, 0 not at all, negative pushes down what "
        'matches the words ("not this"); default 0.5.',
    )

    _split = field_validator("category", "brand", mode="before")(_listed)
    _shops = field_validator("shop", mode="before")(shop_names)
    _numbers = field_validator(
        "k", "color_weight", "diversity", "min_price", "max_price", "text_weight", mode="before"
    )(_not_bool)

    @field_validator("text")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        return None if value is None else check_query(value)

    _booleans = field_validator("cross_category", mode="before")(_bool_only)

    @field_validator("colour")
    @classmethod
    def _named_colour(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return read_colour(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _consistent(self) -> RecommendParams:
        if self.category and self.cross_category:
            raise ValueError("give either category or cross_category, not both")
        if self.colour is not None and self.colour_mode == "other":
            raise ValueError("give either colour or colour_mode=other, not both")
        if self.color_weight is not None and self.colour_mode != "same":
            raise ValueError(
                f"color_weight weighs the garment's own colour: not with colour_mode="
                f"{self.colour_mode}"
            )
        if self.text_weight is not None and self.text is None:
            raise ValueError("text_weight weighs the words: give text too")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        return self


MAX_VIEWED = 50
"""The most products a session may name as viewed, and as "not for me" (more: 422)."""
MAX_VIEW_WEIGHT = 10.0
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the gateway's clock a ``seen_at`` may be (a shopper's clock runs fast)."""


class ViewedProduct(BaseModel):
    """A product the shopper viewed: how much it counts, and when it was seen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    product_id: ProductId
    weight: float = Field(
        default=1.0,
        ge=0.1,
        le=MAX_VIEW_WEIGHT,
        description="How much the view counts against the others (a click 1, an add to basket "
        "2 ...); 0.1-10.",
    )
    seen_at: AwareDatetime | None = Field(
        default=None,
        description="When it was seen (with a time zone; not in the future): its weight halves "
        "every gateway.session_half_life_h hours since. Unset: just now.",
        examples=["2026-12-05T10:00:00Z"],
    )

    _numbers = field_validator("product_id", "weight", mode="before")(_not_bool)

    @field_validator("seen_at")
    @classmethod
    def _not_ahead(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(f"{value.isoformat()} is in the future")
        return value


def _no_repeats(ids: list[int], what: str) -> list[int]:
    repeated = sorted({pid for pid in ids if ids.count(pid) > 1})
    if repeated:
        names = ", ".join(str(pid) for pid in repeated)
        raise ValueError(f"{what} names product {names} more than once")
    return ids


def _session_list(value: Any) -> Any:
    """A list of at most :data:`MAX_VIEWED` items, counted before they are read."""
    if isinstance(value, list) and len(value) > MAX_VIEWED:
        raise ValueError(f"{len(value)} products; a session names at most {MAX_VIEWED}")
    return value


class RecommendJSON(RecommendParams):
    """JSON body: an ``image_url`` to fetch, or a ``product_id`` for "more like this", or
    ``text`` alone (words; with either of the others they refine it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["image_url"], "properties": {"image_url": {"type": "string"}}},
                {"required": ["product_id"], "properties": {"product_id": {"type": "integer"}}},
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {
                    "required": ["viewed"],
                    "properties": {"viewed": {"type": "array", "items": {"type": "object"}}},
                },
            ]
        }
    )

    image_url: str | None = Field(default=None, max_length=2048)
    product_id: ProductId | None = None
    viewed: list[ViewedProduct] | None = Field(
        default=None,
        description=f'"Based on what you viewed": 1-{MAX_VIEWED} products the shopper viewed '
        "(each once); the answer has a group per kind of garment among them, its places of "
        "``k`` (in all) in proportion to its views' weight, recent views counting more; the "
        "products named never come back.",
    )
    not_for_me: list[ProductId] | None = Field(
        default=None,
        description=f'With ``viewed``: up to {MAX_VIEWED} products the shopper marked "not for '
        'me" (each once, none of them viewed): products like them are pushed away.',
    )

    _id = field_validator("product_id", mode="before")(_not_bool)
    _session_lists = field_validator("viewed", "not_for_me", mode="before")(_session_list)

    @field_validator("viewed")
    @classmethod
    def _viewed(cls, value: list[ViewedProduct] | None) -> list[ViewedProduct] | None:
        if value is not None:
            if not value:
                raise ValueError("no products: give at least one viewed product")
            _no_repeats([view.product_id for view in value], "viewed")
        return value

    @field_validator("not_for_me")
    @classmethod
    def _rejected(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else _no_repeats(value, "not_for_me")

    @model_validator(mode="after")
    def _one_source(self) -> RecommendJSON:
        if self.viewed is not None:
            return self._session()
        if self.not_for_me is not None:
            raise ValueError("not_for_me pushes a session's products away: give viewed too")
        if self.image_url is not None and self.product_id is not None:
            raise ValueError("give image_url or product_id, not both")
        if self.image_url is None and self.product_id is None and self.text is None:
            raise ValueError("give image_url, product_id, text or viewed")
        return self

    def _session(self) -> RecommendJSON:
        others = [
            name for name in ("image_url", "product_id", "text") if getattr(self, name) is not None
        ]
        if others:
            raise ValueError(f"give viewed or {' / '.join(others)}, not both")
        assert self.viewed is not None
        both = sorted({v.product_id for v in self.viewed} & set(self.not_for_me or []))
        if both:
            names = ", ".join(str(pid) for pid in both)
            raise ValueError(f"product {names} is both viewed and not_for_me")
        if self.metric != "cosine":
            raise ValueError("viewed ranks by cosine similarity: leave metric out")
        if self.diversity > 0:
            raise ValueError("viewed shares the places among kinds of garment: leave diversity out")
        return self


class RecommendForm(RecommendParams):
    """Multipart form: the photo in ``image`` plus any parameter as a form field (``text``
    with it refines; ``text`` alone searches by words)."""

    image: bytes | None = Field(default=None, json_schema_extra={"format": "binary"})


class Offer(BaseModel):
    """Another shop's offer of a recommended product (the same GTIN, or MPN and brand)."""

    id: int = Field(description="That shop's product id (for POST /feedback).")
    shop: str = Field(description="The shop (source name).")
    title: str
    price: float | None
    currency: str | None
    url: str


class Recommendation(BaseModel):
    id: int = Field(description="Product id (for GET /products/{id} and POST /feedback).")
    title: str
    url: str
    image_url: str | None
    price: float | None
    currency: str | None
    brand: str | None
    category: str | None = Field(default=None, description="The product's catalog category.")
    score: float = Field(description="Similarity, higher is better (0-1).")
    colour: str | None = Field(
        default=None, description="The named colour of the product's garment.", examples=["navy"]
    )
    match: Literal["very close", "close", "loose"] | None = Field(
        default=None,
        description="The score in a shopper's words: the product stands out from its own "
        "shop's other candidates as a product's nearest same-shop, same-class product "
        "typically does (very close), within their usual spread (close), or less (loose). "
        "Within one shop and class, a higher score never has a weaker word.",
    )
    offers: list[Offer] = Field(
        default_factory=list,
        description="Also at: the other shops' offers of this product (an offer group: the "
        "same GTIN, or MPN and brand), cheapest first; within the shop scope. The product is "
        "listed once per answer, whichever shop's picture matched (and never in the answer "
        "to a product_id that is one of its offers).",
    )


class ParsedIntent(BaseModel):
    """What the words were read as: a garment class of the shared taxonomy and a colour."""

    garment: str | None = Field(default=None, examples=["t-shirt"])
    garment_parent: str | None = Field(default=None, examples=["top"])
    colour: str | None = Field(default=None, examples=["blue"])


class SeenColour(BaseModel):
    """The colour of the garment searched for, as shoppers name it."""

    name: str = Field(examples=["navy"])
    probability: float = Field(
        ge=0.0, le=1.0, description="How sure the colour model is of the name."
    )


class Group(BaseModel):
    box: list[float] | None = Field(
        description="The garment's box [x0, y0, x1, y1] in pixels of the uploaded image; "
        "null for a product_id query."
    )
    category: str | None = Field(
        description="The garment, a class of the shared taxonomy (``trousers``, ``bag`` ...), "
        "or the caller's shop category."
    )
    probability: float | None = Field(
        description="How sure the detector and classifier together are of the garment's kind; "
        "null when nothing decided."
    )
    searched: list[str] = Field(
        default_factory=list,
        description="What the search covered: the caller's shop categories, else the garment "
        "classes (``bottom``; two when unsure); empty when every product was searched "
        "(``cross_category``).",
    )
    notice: str | None = Field(
        default=None, description="For the shopper, when this garment has no products to show."
    )
    answered_by: Literal["pictures", "text", "both"] = Field(
        default="pictures",
        description="Which path ranked the group: the pictures (a photo, a product_id, or "
        "words read as pictures by the model's text tower or word bridge), the products' text, "
        "or both fused by rank (words alone, or a photo or product_id refined by ``text``).",
    )
    intent: ParsedIntent | None = Field(
        default=None, description="What ``text`` was read as (null without text)."
    )
    colour: SeenColour | None = Field(
        default=None,
        description="The garment's colour as the search saw it (a photo's garment, or the "
        "product's); null for words alone.",
    )
    recommendations: list[Recommendation]


class RecommendResponse(BaseModel):
    groups: list[Group]
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per stage: download, decode, detect, embed, search, "
        "hydrate, total."
    )
    model_version: str | None
    notice: str | None = Field(
        default=None,
        description="Why there are no groups, for the shopper: no garment was found in the "
        "photo (a photo of one product on a plain background is always searched).",
    )


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: FeedbackKind
    product_id: ProductId
    request_id: str | None = Field(
        default=None,
        max_length=64,
        description="X-Request-ID of the /recommend answer that showed the product; required "
        "without an API key.",
    )
    session_id: str | None = Field(default=None, max_length=128)
    variant: str | None = Field(default=None, max_length=50, description="A/B variant.")
    position: int | None = Field(default=None, ge=0, le=10_000)
    score: float | None = None
    model_version: str | None = Field(default=None, max_length=200)

    _numbers = field_validator("product_id", "position", "score", mode="before")(_not_bool)


class FeedbackOut(BaseModel):
    id: int
    status: Literal["recorded"] = "recorded"
