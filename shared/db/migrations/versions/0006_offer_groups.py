"""one product across shops: identifiers and offer groups

``product_codes``: each product's normalised identifiers (a GTIN-14, or ``brand|mpn``), looked
up by (kind, value). ``offer_groups`` and ``offer_members``: products of different shops that
share one, at most one per shop, each member with its evidence (the identifier, the product it
matched, when). ``offer_splits``: merges undone, never made again on that identifier. The
products already in the catalog get their codes and groups from ``lookalike offers group``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _code_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=420), nullable=False),
    ]


def _product_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["product_id"],
        ["products.id"],
        name=op.f(f"fk_{table}_product_id_products"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "product_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        *_code_columns(),
        _product_fk("product_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_codes")),
        sa.UniqueConstraint("product_id", "kind", "value", name="uq_product_codes_product_code"),
    )
    op.create_index("ix_product_codes_kind_value", "product_codes", ["kind", "value"])
    op.create_table(
        "offer_groups",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_groups")),
    )
    op.create_table(
        "offer_members",
        sa.Column("product_id", ID, nullable=False),
        sa.Column("group_id", ID, nullable=False),
        sa.Column("source_id", ID, nullable=False),
        *_code_columns(),
        sa.Column("matched_product_id", ID, nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        _product_fk("offer_members"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["offer_groups.id"],
            name=op.f("fk_offer_members_group_id_offer_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["matched_product_id"],
            ["products.id"],
            name=op.f("fk_offer_members_matched_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_offer_members")),
        sa.UniqueConstraint("group_id", "source_id", name="uq_offer_members_group_source"),
    )
    op.create_index(op.f("ix_offer_members_group_id"), "offer_members", ["group_id"])
    op.create_table(
        "offer_splits",
        sa.Column("id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        *_code_columns(),
        sa.Column("group_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _product_fk("offer_splits"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_splits")),
        sa.UniqueConstraint("product_id", "kind", "value", name="uq_offer_splits_product_code"),
    )


def downgrade() -> None:
    op.drop_table("offer_splits")
    op.drop_index(op.f("ix_offer_members_group_id"), table_name="offer_members")
    op.drop_table("offer_members")
    op.drop_table("offer_groups")
    op.drop_index("ix_product_codes_kind_value", table_name="product_codes")
    op.drop_table("product_codes")
