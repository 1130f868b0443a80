"""Model versions: which embedder or detector artifact is active."""

from __future__ import annotations

from sqlalchemy import select, update

from shared.db.models import (
    ModelVersion,
)
from shared.db.schemas import (
    ModelVersionIn,
    ModelVersionOut,
)
from shared.db.store import Store


class ModelVersionsRepository(Store):
    """Model versions: which embedder or detector artifact is active."""

    def register_model_version(
        self, model: ModelVersionIn, *, activate: bool = False
    ) -> ModelVersionOut:
        """Record a model artifact (idempotent by name); ``activate`` makes it the one in use
        for its kind."""
        with self.writing() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.name == model.name))
            if row is None:
                row = ModelVersion(**model.model_dump())
                session.add(row)
            if activate:
                session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.kind == model.kind, ModelVersion.name != model.name)
                    .values(active=False)
                    .execution_options(synchronize_session=False)
                )
                row.active = True
            session.flush()
            return ModelVersionOut.model_validate(row)

    def active_model_version(self, kind: str) -> ModelVersionOut | None:
        query = select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.active)
        with self.reading() as session:
            row = session.scalar(query)
            return None if row is None else ModelVersionOut.model_validate(row)
