"""Migrations run on both databases and describe exactly the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from shared.db import Catalog
from shared.db.migrate import current_revision, downgrade, head_revision, upgrade
from shared.db.models import Base

pytestmark = pytest.mark.integration


def test_schema_matches_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(catalog.engine) == head_revision()


def test_downgrade_to_base_and_back(sqlite_catalog: Catalog) -> None:
    engine = sqlite_catalog.engine
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert {"products", "product_images", "garment_crops"} <= set(inspect(engine).get_table_names())
