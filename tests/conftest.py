"""Fixtures shared by the whole suite.

Integration tests use the real Postgres and Redis of the machine. Each test run gets its own
Postgres database (migrated once) and its own Redis db number, so runs never see each other's
data. Outside CI a missing service skips those tests with the reason; in CI (``CI=true``) it
fails them: CI must not pass on skipped integration tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from shared.db import Catalog
from shared.db.models import Base
from shared.settings import Settings

POSTGRES_URL = os.environ.get(
    "LOOKALIKE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytest_plugins = ["tests.stack"]


def unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error.__class__.__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI needs it (.ci/run starts it)", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty Postgres database, dropped afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"lookalike_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        unavailable("Postgres", exc)
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated Postgres database for this test run, dropped at the end."""
    with fresh_postgres_database() as url:
        catalog = Catalog(url)
        catalog.migrate()
        catalog.dispose()
        yield url


def _empty(catalog: Catalog) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with catalog.engine.begin() as conn:
        if catalog.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def pg_catalog(postgres_url: str) -> Iterator[Catalog]:
    catalog = Catalog(postgres_url)
    _empty(catalog)
    yield catalog
    catalog.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture
def sqlite_catalog(sqlite_url: str) -> Iterator[Catalog]:
    catalog = Catalog(sqlite_url)
    catalog.migrate()
    yield catalog
    catalog.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest) -> Catalog:
    """The same catalog tests, once on SQLite and once on Postgres."""
    name = "sqlite_catalog" if request.param == "sqlite" else "pg_catalog"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def redis_db_url() -> Iterator[str]:
    """A Redis URL with a db number (1-15) that no other concurrent test run holds."""
    lock_client = redis.Redis.from_url(f"{REDIS_URL}/0")
    token = uuid.uuid4().hex
    try:
        lock_client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    for number in range(1, 16):
        if lock_client.set(f"lookalike:test-db:{number}", token, nx=True, ex=3600):
            break
    else:
        pytest.fail("all Redis test db numbers 1-15 are held by other test runs")
    url = f"{REDIS_URL}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        if lock_client.get(f"lookalike:test-db:{number}") == token.encode():
            lock_client.delete(f"lookalike:test-db:{number}")
        lock_client.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded settings in a temporary data dir, ignoring the caller's environment."""
    for name in list(os.environ):
        if name.startswith("LOOKALIKE_") or name in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "QDRANT_URL",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return Settings(data_dir=tmp_path / "data")
