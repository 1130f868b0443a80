"""Per-client rate limits and API keys: the admin's (``LOOKALIKE_API_KEY``) and the
storefronts' (``lookalike keys add``: each sees only its own shops' products).

The rate limit is GCRA (a token bucket without a refill timer): at most
``gateway.rate_limit_per_minute`` requests to ``POST /recommend`` a minute per client (and
``gateway.feedback_rate_limit_per_minute`` to ``POST /feedback`` without an API key), in bursts
up to the same number. With ``REDIS_URL`` set the budgets live in Redis (shared by every
gateway replica; while Redis does not answer each process limits on its own), else in this
process. Clients are told apart by their address; ``X-Forwarded-For`` counts only from the
proxies in ``gateway.trusted_proxies`` (the app applies it, see
:func:`services.gateway.app.create_app`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from services.gateway.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from shared.ratelimit import RateLimiter
from shared.ratelimit import make_rate_limiter as shared_rate_limiter
from shared.settings import Settings

__all__ = [
    "ANYONE",
    "Caller",
    "caller",
    "check_api_key",
    "enforce_feedback_limit",
    "enforce_rate_limit",
    "make_rate_limiter",
]


def make_rate_limiter(settings: Settings, per_minute: int, *, prefix: str) -> RateLimiter | None:
    """Budgets in Redis (keys under ``prefix``) when ``REDIS_URL`` is set, else in memory;
    ``None`` when ``per_minute`` is 0 (turned off)."""
    if per_minute <= 0:
        return None
    return shared_rate_limiter(settings.redis_url, prefix=prefix)


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(request: Request, limiter: RateLimiter | None, per_minute: int) -> None:
    if limiter is None:
        return
    wait = limiter.hit(client_key(request), per_minute)
    if wait > 0:
        raise RateLimitedError(
            f"too many requests: at most {per_minute} a minute per client; retry in {wait:.1f} s",
            retry_after_s=wait,
        )


def enforce_rate_limit(request: Request) -> None:
    """Dependency of ``/recommend``: 429 with ``Retry-After`` when the client is over its
    budget."""
    per_minute = request.app.state.settings.gateway.rate_limit_per_minute
    _limit(request, getattr(request.app.state, "rate_limiter", None), per_minute)


def enforce_feedback_limit(request: Request) -> None:
    """:func:`enforce_rate_limit` for storefront feedback (its own, smaller budget)."""
    per_minute = request.app.state.settings.gateway.feedback_rate_limit_per_minute
    _limit(request, getattr(request.app.state, "feedback_limiter", None), per_minute)


def _given_key(request: Request) -> str | None:
    """The key in ``X-API-Key`` (or ``Authorization: Bearer``), if any."""
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return given


def check_api_key(request: Request) -> bool:
    """With ``LOOKALIKE_API_KEY`` set, the request must carry it in ``X-API-Key`` (or
    ``Authorization: Bearer``): 401 without a key, 403 with a wrong one, True with the right
    one. Without a key configured: False (an anonymous caller, e.g. the storefront)."""
    settings: Settings = request.app.state.settings
    if not settings.api_key:
        return False
    given = _given_key(request)
    if given is None:
        raise UnauthorizedError("this endpoint needs an API key (X-API-Key header)")
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ForbiddenError("the API key is not valid")
    return True


@dataclass(frozen=True)
class Caller:
    """Who asks: the admin (``LOOKALIKE_API_KEY``), a storefront (its key's ``name`` and
    ``shops``), or anyone (no key)."""

    admin: bool = False
    key: str | None = None
    shops: frozenset[str] | None = None
    """The shops (source names) the caller may see; ``None``: every shop."""

    @property
    def keyed(self) -> bool:
        """The caller showed a valid key (the admin's or a storefront's)."""
        return self.admin or self.key is not None


ANYONE = Caller()


def caller(request: Request) -> Caller:
    """The caller of a public endpoint (``/recommend``, ``/feedback``, ``/products``): no key,
    anyone; the admin key, the admin; a storefront key (looked up in the catalog on every
    request, so a key added or removed counts at once), that storefront. Any other key: 403
    (a removed storefront key never falls back to seeing every shop)."""
    given = _given_key(request)
    if given is None:
        return ANYONE
    settings: Settings = request.app.state.settings
    if settings.api_key and hmac.compare_digest(given.encode(), settings.api_key.encode()):
        return Caller(admin=True)
    stored = request.app.state.catalog.api_key(given)
    if stored is None:
        raise ForbiddenError("the API key is not valid")
    if not stored.shops:  # never made so; an empty scope must not read as every shop
        raise ForbiddenError(f"the API key {stored.name!r} covers no shop")
    return Caller(key=stored.name, shops=frozenset(stored.shops))
