"""Storefront API keys: each sees only the products of its shops (source names).

A key is a random token shown once, when it is made; the catalog keeps its SHA-256 (a
high-entropy token needs no salt, and the hash is what a request's key is looked up by). A
key's shops are names: a shop removed later leaves the key seeing nothing of it, and one
re-added under the same name is seen again.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from shared.db.models import ApiKey, Source
from shared.db.schemas import ApiKeyIn, ApiKeyOut, NewApiKey
from shared.db.store import Store
from shared.errors import ConflictError, InvalidInputError, NotFoundError

KEY_PREFIX = "lk_"
"""Storefront keys start with this (easy to spot in a config file or a leak scanner)."""


def key_hash(key: str) -> str:
    """How a key is stored and looked up: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeysRepository(Store):
    """Storefront API keys bound to shops."""

    def add_api_key(self, key: ApiKeyIn) -> NewApiKey:
        """Make a key for ``key.shops`` (each a source of the catalog); the answer holds the
        key itself, which is stored nowhere."""
        shops = sorted(set(key.shops))
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.writing() as session:
                known = set(session.scalars(select(Source.name).where(Source.name.in_(shops))))
                unknown = [shop for shop in shops if shop not in known]
                if unknown:
                    names = ", ".join(repr(shop) for shop in unknown)
                    raise InvalidInputError(f"no shop (source) named {names}")
                if session.scalar(select(ApiKey.id).where(ApiKey.name == key.name)) is not None:
                    raise ConflictError(f"an API key named {key.name!r} exists already")
                row = ApiKey(name=key.name, key_hash=key_hash(secret), shops=shops)
                session.add(row)
                session.flush()
                return NewApiKey(
                    id=row.id, name=row.name, shops=shops, created_at=row.created_at, key=secret
                )
        except IntegrityError:  # another process made a key of that name between our checks
            raise ConflictError(f"an API key named {key.name!r} exists already") from None

    def api_key(self, secret: str) -> ApiKeyOut | None:
        """The storefront key ``secret`` is, or ``None`` (unknown or removed)."""
        with self.reading() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash(secret)))
            return ApiKeyOut.model_validate(row) if row is not None else None

    def list_api_keys(self) -> list[ApiKeyOut]:
        with self.reading() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.name))
            return [ApiKeyOut.model_validate(row) for row in rows]

    def remove_api_key(self, name: str) -> None:
        """Delete the key ``name``: requests with it are refused from this commit on."""
        with self.writing() as session:
            removed = session.execute(delete(ApiKey).where(ApiKey.name == name))
            if not getattr(removed, "rowcount", 0):
                raise NotFoundError(f"no API key named {name!r}")
