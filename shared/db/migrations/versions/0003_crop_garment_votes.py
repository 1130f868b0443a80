"""crops carry the garment classifier's vote

``garment_crops.garment`` (a :mod:`shared.taxonomy` class name) and ``garment_p`` (its
probability), set by ingest with the same classifier that reads a shopper's photo; the
garment class of a shop category is derived from them (:func:`shared.taxonomy.map_category`).
Existing crops have no vote until they are embedded again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("garment_crops", sa.Column("garment", sa.String(length=40), nullable=True))
    op.add_column("garment_crops", sa.Column("garment_p", sa.Float(), nullable=True))


def downgrade() -> None:
    # Not in batch mode: rebuilding the table on SQLite is not needed to drop a column.
    op.drop_column("garment_crops", "garment_p")
    op.drop_column("garment_crops", "garment")
