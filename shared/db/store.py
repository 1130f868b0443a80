"""The catalog's storage: an engine, short read and write transactions, migrations.

Every repository of the catalog stands on :class:`Store`; :class:`~shared.db.Catalog` is all of
them in one facade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.engine import SQLITE_IMMEDIATE, make_engine
from shared.errors import CatalogNotMigratedError

_NO_TABLE = ("no such table", "UndefinedTable")
"""How SQLite and Postgres (psycopg) say that a table does not exist."""


class Store:
    """An engine and its sessions: each method of a repository opens and commits its own short
    transaction; nothing is held between calls."""

    def __init__(self, engine: Engine | str) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._write = sessionmaker(writer, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision (safe to call on every start)."""
        from shared.db.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._schema_checked(), self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._schema_checked(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def _schema_checked(self) -> Iterator[None]:
        """A missing table means the catalog was never migrated: say so, and what to run."""
        try:
            yield
        except (OperationalError, ProgrammingError) as exc:
            orig = exc.orig
            if not any(s in f"{type(orig).__name__} {orig}" for s in _NO_TABLE):
                raise
            where = self.engine.url.render_as_string(hide_password=True)
            raise CatalogNotMigratedError(
                f"the catalog ({where}) is not migrated: run lookalike migrate"
            ) from exc

    def _insert(self, model: type[Any]) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(model)
