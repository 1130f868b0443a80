"""product identity: a per-source stable key

A product is the same product when its source and ``identity_key`` match (see
:func:`shared.db.schemas.identity_key`), so a shop that moves to another host or port keeps
its products. Existing rows get their key from ``external_id``, else their canonical URL's
path and query. Rows that now share a key (the duplicates an address change created) are
merged: the one seen last keeps the key and the feedback; the others become inactive, keyed
``duplicate:<id>``, with their URL marked ``#duplicate-of-<id>`` so that it is free again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.db.models import utcnow
from shared.db.schemas import identity_key

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_products = sa.table(
    "products",
    sa.column("id", sa.Integer),
    sa.column("source_id", sa.Integer),
    sa.column("canonical_url", sa.String),
    sa.column("external_id", sa.String),
    sa.column("identity_key", sa.String),
    sa.column("active", sa.Boolean),
    sa.column("last_seen", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_feedback = sa.table("feedback_events", sa.column("product_id", sa.Integer))


def upgrade() -> None:
    # Added NOT NULL with a placeholder default: SQLite cannot make a column NOT NULL later
    # without rebuilding the table (which, with foreign keys on, would cascade-delete images).
    op.add_column(
        "products",
        sa.Column("identity_key", sa.String(length=2048), nullable=False, server_default=""),
    )
    _backfill(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("products", "identity_key", server_default=None)
    op.create_index(
        "uq_products_source_identity", "products", ["source_id", "identity_key"], unique=True
    )


def _backfill(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.select(
            _products.c.id,
            _products.c.source_id,
            _products.c.external_id,
            _products.c.canonical_url,
        ).order_by(_products.c.source_id, _products.c.last_seen.desc(), _products.c.id.desc())
    ).all()
    kept: dict[tuple[int, str], int] = {}
    now = utcnow()
    for product_id, source_id, external_id, url in rows:
        key = identity_key(external_id, url)
        survivor = kept.setdefault((source_id, key), product_id)
        where = _products.c.id == product_id
        if survivor == product_id:
            conn.execute(sa.update(_products).where(where).values(identity_key=key))
            continue
        conn.execute(
            sa.update(_products)
            .where(where)
            .values(
                identity_key=f"duplicate:{product_id}",
                canonical_url=f"{url[:2000]}#duplicate-of-{survivor}",
                active=False,
                updated_at=now,
            )
        )
        conn.execute(
            sa.update(_feedback)
            .where(_feedback.c.product_id == product_id)
            .values(product_id=survivor)
        )


def downgrade() -> None:
    """Merged duplicates stay merged."""
    op.drop_index("uq_products_source_identity", table_name="products")
    # Not in batch mode: rebuilding the table on SQLite would cascade-delete its images.
    op.drop_column("products", "identity_key")
