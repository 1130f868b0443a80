"""Counts and read-only SQL for analysts."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.sql import text

from shared.db.images import ImagesRepository
from shared.db.models import (
    ImageState,
    Product,
    ProductImage,
    Source,
)
from shared.db.schemas import (
    CatalogStats,
    ShopStats,
)
from shared.errors import InvalidInputError, ReadOnlyQueryError

_READ_KEYWORDS = frozenset({"select", "with", "explain", "values", "table", "show"})
_PG_READ_ONLY_VIOLATION = "25006"


class AnalyticsRepository(ImagesRepository):
    """Counts (images included) and read-only SQL for analysts."""

    def stats(self) -> CatalogStats:
        with self.reading() as session:
            sources = session.scalar(select(func.count()).select_from(Source)) or 0
            rows = session.execute(select(Product.active, func.count()).group_by(Product.active))
            by_active = {bool(active): count for active, count in rows}
        return CatalogStats(
            sources=sources,
            products_active=by_active.get(True, 0),
            products_inactive=by_active.get(False, 0),
            images=self.image_state_counts(),
        )

    def shop_stats(self) -> list[ShopStats]:
        """Each source's counts (in the order sources were added): products, active ones,
        and its active images indexed, waiting and failed."""
        with self.reading() as session:
            sources = session.execute(
                select(Source.id, Source.name, Source.enabled).order_by(Source.id)
            ).all()
            products: dict[tuple[int, bool], int] = {
                (source_id, bool(active)): count
                for source_id, active, count in session.execute(
                    select(Product.source_id, Product.active, func.count()).group_by(
                        Product.source_id, Product.active
                    )
                )
            }
            images: dict[tuple[int, ImageState], int] = {
                (source_id, ImageState(state)): count
                for source_id, state, count in session.execute(
                    select(Product.source_id, ProductImage.state, func.count())
                    .join(Product, Product.id == ProductImage.product_id)
                    .where(ProductImage.active.is_(True))
                    .group_by(Product.source_id, ProductImage.state)
                )
            }
        return [
            ShopStats(
                source=name,
                enabled=bool(enabled),
                products=products.get((sid, True), 0) + products.get((sid, False), 0),
                products_active=products.get((sid, True), 0),
                images_indexed=images.get((sid, ImageState.DONE), 0),
                images_pending=images.get((sid, ImageState.PENDING), 0)
                + images.get((sid, ImageState.PROCESSING), 0),
                images_failed=images.get((sid, ImageState.FAILED), 0),
            )
            for sid, name, enabled in sources
        ]

    def run_query(
        self, sql: str, params: dict[str, Any] | None = None, *, max_rows: int = 10_000
    ) -> list[dict[str, Any]]:
        """Run one read-only SQL statement with bound ``:name`` parameters.

        Refuses anything but a single SELECT/WITH/EXPLAIN/VALUES statement, and runs it in a
        read-only transaction (Postgres ``READ ONLY``, SQLite ``query_only``), so a data-
        modifying CTE or function is refused by the database itself. Raises
        :class:`ReadOnlyQueryError` for writes and :class:`InvalidInputError` for bad SQL,
        missing parameters, or more than ``max_rows`` rows.
        """
        statement = _single_statement(sql)
        keyword = statement.split(None, 1)[0].lower() if statement else ""
        if keyword not in _READ_KEYWORDS:
            raise ReadOnlyQueryError(
                f"only read queries are allowed (SELECT, WITH, EXPLAIN, VALUES), got {keyword!r}"
            )
        with self.engine.connect() as conn:
            try:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    conn.exec_driver_sql("SET LOCAL statement_timeout = '60s'")
                else:
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                try:
                    result = conn.execute(text(statement), params or {})
                    rows = result.fetchmany(max_rows + 1) if result.returns_rows else []
                finally:
                    conn.rollback()
                    if self.dialect == "sqlite":
                        conn.exec_driver_sql("PRAGMA query_only = OFF")
            except StatementError as exc:
                if isinstance(exc, DBAPIError):
                    raise _query_error(exc) from exc
                raise InvalidInputError(f"query could not be run: {exc.orig or exc}") from exc
            except SQLAlchemyError as exc:
                raise InvalidInputError(f"query could not be run: {exc}") from exc
        if len(rows) > max_rows:
            raise InvalidInputError(f"query returned more than {max_rows} rows; add a LIMIT")
        return [dict(row._mapping) for row in rows]


def _query_error(exc: DBAPIError) -> InvalidInputError:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == _PG_READ_ONLY_VIOLATION or "readonly" in message or "read-only" in message:
        return ReadOnlyQueryError(f"query tried to write: {message}")
    return InvalidInputError(f"query failed: {message}")


_TOKEN = re.compile(
    r"""
      '(?:[^']|'')*'         # string literal
    | "(?:[^"]|"")*"         # quoted identifier
    | \$(\w*)\$.*?\$\1\$     # Postgres dollar-quoted string
    | --[^\n]*               # line comment
    | /\*.*?\*/              # block comment
    | ;                      # statement separator
    | [^'"$;/-]+ | .         # anything else
    """,
    re.VERBOSE | re.DOTALL,
)


def _single_statement(sql: str) -> str:
    """The statement without comments or a trailing ``;``; refuses several statements."""
    parts: list[str] = []
    ended = False
    for match in _TOKEN.finditer(sql):
        piece = match.group(0)
        if piece.startswith(("--", "/*")):
            parts.append(" ")
            continue
        if piece == ";":
            ended = True
            continue
        if ended and piece.strip():
            raise ReadOnlyQueryError("only one SQL statement may be run at a time")
        parts.append(piece)
    return "".join(parts).strip()
