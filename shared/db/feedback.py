"""Feedback events (impressions, clicks, purchases) for offline and A/B measurement."""

from __future__ import annotations

from shared.db.models import (
    FeedbackEvent,
    Product,
)
from shared.db.schemas import (
    FeedbackIn,
)
from shared.db.store import Store
from shared.errors import NotFoundError


class FeedbackRepository(Store):
    """Feedback events (impressions, clicks, purchases) for offline and A/B measurement."""

    def record_feedback(self, event: FeedbackIn) -> int:
        with self.writing() as session:
            if session.get(Product, event.product_id) is None:
                raise NotFoundError(f"no product {event.product_id}")
            row = FeedbackEvent(**event.model_dump())
            session.add(row)
            session.flush()
            return row.id
