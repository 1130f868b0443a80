"""The recommender's contract: queries in, products with scores out (the same pydantic models
in process and over HTTP)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.colour import SHOPPER_COLOURS
from shared.vectors import Distance, Hit


class Filters(BaseModel):
    """Business filters; products are always active ones."""

    model_config = ConfigDict(extra="forbid")

    brand: list[str] = Field(default_factory=list, description="Any of these brands.")
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    source: list[str] = Field(
        default_factory=list, description="Any of these shops (source names); empty: every shop."
    )

    @model_validator(mode="after")
    def _price_range(self) -> Filters:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        return self


class Ranking(BaseModel):
    """How to rank: how many products, the shape metric, colour's weight, diversity, filters."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=12, ge=1, le=100)
    metric: Distance = "cosine"
    color_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    colour_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="The share of a hit's colour similarity that is the probability that its "
        "named colour is the query's (``colour_probs`` against the crop's ``colour_name`` and "
        "``colour_p``); the rest is the colour descriptors' Bhattacharyya coefficient.",
    )
    diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    filters: Filters = Field(default_factory=Filters)
    candidates: int | None = Field(default=None, ge=1, le=2000)
    colour_names: list[str] = Field(
        default_factory=list,
        max_length=len(SHOPPER_COLOURS),
        description="Only products whose garment's named colour is one of these shopper "
        "colour names; empty: any colour.",
    )
    exclude_colour_names: list[str] = Field(
        default_factory=list,
        max_length=len(SHOPPER_COLOURS),
        description="Leave out products whose garment's named colour is one of these "
        '("similar, in another colour").',
    )

    @field_validator("colour_names", "exclude_colour_names")
    @classmethod
    def _known_colours(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in SHOPPER_COLOURS]
        if unknown:
            raise ValueError(f"unknown colour names {unknown}: want {', '.join(SHOPPER_COLOURS)}")
        return sorted(set(names))


class NeighbourVote(BaseModel):
    """A query whose garment classes its nearest catalog products help decide, in the same
    call: the ``neighbours`` nearest products of any class vote (the nearest counts most) and
    are blended with the crop classifier's ``probabilities`` (taxonomy names) as
    :func:`shared.scope.decide` does; the classes decided are then searched, as if the query
    had named them (``garments``, ``garment_shares``, ``unlikely_garments``, and
    ``category_votes`` when any class was decided)."""

    model_config = ConfigDict(extra="forbid")

    neighbours: int = Field(ge=1, le=50)
    probabilities: dict[str, float] = Field(default_factory=dict)
    neighbour_weight: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    max_parents: int = Field(gt=0)
    unlikely_below: float = Field(default=0.0, ge=0.0, le=1.0)
    category_votes: int = Field(default=0, ge=0, le=10)


class Decided(BaseModel):
    """The garment classes a :class:`NeighbourVote` decided: the garment the crop shows (and
    its blended probability), and the classes searched with their shares."""

    garment: str | None = None
    probability: float | None = None
    garments: list[str] = Field(default_factory=list)
    garment_shares: list[float] = Field(default_factory=list)
    unlikely_garments: list[str] = Field(default_factory=list)


class RecommendQuery(Ranking):
    """One garment's search: its embedding (and colour descriptor) and how to rank."""

    embedding: list[float] = Field(min_length=1)
    colour: list[float] | None = None
    colour_probs: list[float] | None = Field(
        default=None,
        min_length=len(SHOPPER_COLOURS),
        max_length=len(SHOPPER_COLOURS),
        description="The query garment's named-colour probabilities (``shared.colour."
        "SHOPPER_COLOURS`` order); with ``colour_share``, a candidate's colour similarity "
        "counts the chance that it is the same named colour.",
    )
    model_version: str | None = Field(
        default=None,
        description="The model that made ``embedding``: its collection is searched (else the "
        "live one behind the alias).",
    )
    categories: list[str] = Field(
        default_factory=list, description="Any of these categories; empty: every category."
    )
    garments: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Any of these garment classes (parents of the shared taxonomy: top, "
        "bottom, footwear ...), the class each catalog crop is indexed under; empty: any.",
    )
    category_votes: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Products of the shop categories of this many nearest products (within "
        "the filters) come first: a photo of a sneaker meets sneakers before loafers (not "
        "with several ``garment_shares``, which share the places by class).",
    )
    garment_shares: list[float] = Field(
        default_factory=list,
        max_length=16,
        description="With several garments: the share of the k places each one gets (in the "
        "order of ``garments``; the best scores fill what a class cannot).",
    )
    unlikely_garments: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Garment classes the query is unlikely to show (the crop classifier's "
        "view): their products come after the others, each part in its order; jeans read as "
        "trousers do not meet skirts first.",
    )
    vote: NeighbourVote | None = Field(
        default=None,
        description="Decide the garment classes from the nearest catalog products first, in "
        "this call (a product shot); ``garments`` and the fields it decides are then ignored.",
    )
    exclude_product_ids: list[int] = Field(default_factory=list)
    exclude_sources: list[str] = Field(
        default_factory=list,
        description="Leave out these sources' products (shops disabled or removed since their "
        "points were indexed).",
    )
    match: bool = Field(
        default=True,
        description="Say how close each hit is (``match``, ``close_match``): a photo's "
        "search; off where the query is not a photo's garment (words read as pictures).",
    )


class SimilarQuery(Ranking):
    """ "More like this": products like a catalog product, whose stored vectors are the query
    (the product itself is left out)."""

    other_colour: bool = Field(
        default=False,
        description='"Similar, in another colour": leave out the products of the product\'s '
        "own named colour and rank by shape alone.",
    )

    categories: list[str] | None = Field(
        default=None,
        description="Any of these categories; empty: every category; unset: the product's own.",
    )


class ProductHit(BaseModel):
    """One recommended product: its best-matching crop and scores (higher is better, 0-1)."""

    product_id: int
    score: float
    shape_score: float | None = None
    colour_score: float | None = None
    point_id: str
    category: str | None = None
    garment: str | None = Field(default=None, description="The crop's garment class.")
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    source: str | None = Field(default=None, description="The shop's source name.")
    image_url: str | None = None
    bbox: list[float] | None = None
    model_version: str | None = None
    colour_name: str | None = Field(
        default=None, description="The named colour of the hit's garment (its crop's)."
    )
    said: bool | None = Field(
        default=None,
        description="A text hit: whether the product's own words (title, brand, category, "
        "attributes) share a word with the query's (null: not a text hit).",
    )
    match: Literal["very close", "close", "loose"] | None = Field(
        default=None,
        description="How far the hit's score stands above its shop's other candidates, placed "
        "among how far a product's nearest same-shop, same-class product stands above the rest "
        "(null: the shop or the candidates are too few to tell, or the scale is being learnt).",
    )

    @classmethod
    def of(
        cls,
        hit: Hit,
        score: float,
        *,
        shape: float | None = None,
        colour: float | None = None,
        said: bool | None = None,
    ) -> ProductHit:
        """A hit of the index as a product: its payload's fields and its scores (rounded)."""
        payload = hit.payload
        price = payload.get("price")
        return cls(
            product_id=int(payload["product_id"]),
            score=round(score, 6),
            shape_score=None if shape is None else round(shape, 6),
            colour_score=None if colour is None else round(colour, 6),
            said=said,
            point_id=hit.id,
            category=payload.get("category"),
            garment=payload.get("garment"),
            brand=payload.get("brand"),
            price=float(price) if price is not None else None,
            currency=payload.get("currency"),
            source=payload.get("source"),
            image_url=payload.get("image_url"),
            bbox=payload.get("bbox"),
            model_version=payload.get("model_version"),
            colour_name=payload.get("colour_name"),
        )


class RecommendResult(BaseModel):
    hits: list[ProductHit]
    collection: str | None = None
    candidates: int = Field(default=0, description="Candidate points scored.")
    garments: list[str] = Field(
        default_factory=list,
        description="The garment classes searched (the query's, unless the index has none "
        "yet); empty: any.",
    )
    close_match: bool | None = Field(
        default=None,
        description="Whether the best hit stands out as nearly every catalog product's nearest "
        "same-kind product does (false: no close match in this shop; null: cannot tell).",
    )
    decided: Decided | None = Field(
        default=None, description="What the query's ``vote`` decided (none without one)."
    )


class SimilarResult(RecommendResult):
    """A :class:`SimilarQuery`'s products, with what the search started from."""

    colour_name: str | None = Field(
        default=None, description="The named colour of the product's garment (its front crop)."
    )
    colour_p: float | None = None

    category: str | None = Field(default=None, description="The product's own category.")
    categories: list[str] = Field(default_factory=list, description="Categories searched.")
    model_version: str | None = Field(
        default=None, description="The model of the product's vectors (its collection)."
    )


class TextQuery(Ranking):
    """A search by words over the products' text (:mod:`shared.words`): the sentence model's
    ranking and the lexical one fused by rank, filters as for a picture."""

    text: str = Field(min_length=1, max_length=500)
    garments: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Any of these garment classes (taxonomy parents); empty: the class the "
        "words name (when ``scope``), else any.",
    )
    scope: bool = Field(
        default=True,
        description="Search only the garment class the words name (widened to every class "
        "when it has too few products).",
    )
    categories: list[str] = Field(default_factory=list)
    exclude_product_ids: list[int] = Field(default_factory=list)
    exclude_sources: list[str] = Field(default_factory=list)


class Intent(BaseModel):
    """What the words were read as (none of it: null)."""

    garment: str | None = Field(default=None, description="Garment class of the taxonomy.")
    garment_parent: str | None = None
    colour: str | None = Field(default=None, description="Canonical colour name.")


class TextResult(RecommendResult):
    """A :class:`TextQuery`'s products (one per product, best first) and the parsed intent."""

    intent: Intent = Field(default_factory=Intent)
    evidence: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="The share of the hits that ``said`` the query's words (a shopper's words "
        "read as the catalog's): how much the shop's text knows of what was asked (a shop "
        "whose titles say nothing: 0).",
    )


class SearchRequest(BaseModel):
    queries: list[RecommendQuery] = Field(min_length=1, max_length=32)


class SearchResponse(BaseModel):
    results: list[RecommendResult]


class StoredPoint(BaseModel):
    """A product's indexed crop: its vectors and payload ("more like this")."""

    point_id: str
    embedding: list[float]
    colour: list[float] | None = None
    payload: dict[str, Any]


class ProductPoints(BaseModel):
    product_id: int
    points: list[StoredPoint]


MAX_SESSION_PRODUCTS = 50
"""The most viewed (and the most "not for me") products one session query may name."""


class SessionView(BaseModel):
    """A viewed product and how much it counts (its weight, recency already applied)."""

    model_config = ConfigDict(extra="forbid")

    product_id: int = Field(ge=1)
    weight: float = Field(default=1.0, gt=0.0)


class SessionQuery(Ranking):
    """ "Based on what you viewed": products like a shopper's viewed products, grouped by the
    kind of garment of each (a :class:`SessionGroup` per kind, its places in proportion to its
    views' weight), away from the ``not_for_me`` ones; the products named never come back."""

    viewed: list[SessionView] = Field(min_length=1, max_length=MAX_SESSION_PRODUCTS)
    not_for_me: list[int] = Field(default_factory=list, max_length=MAX_SESSION_PRODUCTS)
    categories: list[str] = Field(
        default_factory=list,
        description="Search these shop categories in every group instead of the group's own "
        "garment class.",
    )
    cross_category: bool = Field(
        default=False, description="Search every garment class in every group."
    )
    other_colour: bool = Field(
        default=False,
        description='"Similar, in another colour": leave out the products of the colours the '
        "group's viewed products have, and rank by shape alone.",
    )
    exclude_product_ids: list[int] = Field(
        default_factory=list,
        description="Leave out these products too (the catalog no longer shows them).",
    )
    exclude_sources: list[str] = Field(
        default_factory=list,
        description="Leave out these sources' products (shops disabled or removed since their "
        "points were indexed).",
    )


class SessionGroup(RecommendResult):
    """One kind of garment of the session and its products."""

    garment: str | None = Field(
        default=None,
        description="The kind (a class of the shared taxonomy; the product's category when "
        "its garment class is unknown).",
    )
    categories: list[str] = Field(
        default_factory=list, description="The shop category searched first (the kind's)."
    )
    viewed: list[int] = Field(default_factory=list, description="The session's products of it.")
    share: float = Field(default=0.0, description="Its share of the session's weight.")
    colour_name: str | None = Field(
        default=None, description="The named colour that weighs most among its viewed products."
    )
    colour_p: float | None = None


class SessionResult(BaseModel):
    groups: list[SessionGroup] = Field(default_factory=list)
    missing: list[int] = Field(
        default_factory=list,
        description="Products of the query that have no indexed picture (none is searched "
        "when any is missing).",
    )
    model_version: str | None = None
