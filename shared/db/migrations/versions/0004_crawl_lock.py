"""one running crawl per source: the crawl lock

A ``running`` crawl run is the lock on its source: a partial unique index allows one per
source, across processes. ``holder`` says who crawls (pid and host) and ``heartbeat_at`` is
its lease, renewed while the crawl runs; a lease not renewed in time may be taken over.
Older duplicate ``running`` runs of a source (two crawls at once) are marked failed first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.add_column("crawl_runs", sa.Column("holder", sa.String(length=200), nullable=True))
    op.add_column(
        "crawl_runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE crawl_runs SET status = 'failed' WHERE status = 'running' AND id NOT IN "
        "(SELECT MAX(id) FROM crawl_runs WHERE status = 'running' GROUP BY source_id)"
    )
    op.create_index(
        "uq_crawl_runs_source_running",
        "crawl_runs",
        ["source_id"],
        unique=True,
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("uq_crawl_runs_source_running", table_name="crawl_runs")
    op.drop_column("crawl_runs", "heartbeat_at")
    op.drop_column("crawl_runs", "holder")
