"""Per-client rate limits on ``POST /recommend`` and API keys for write/admin endpoints.

The rate limit is GCRA (a token bucket without a refill timer): at most
``recommender.rate_limit_per_minute`` requests a minute per client, in bursts up to the same
number. With ``REDIS_URL`` set the budget lives in Redis (shared by every gateway replica;
while Redis does not answer each process limits on its own), else in this process.
Clients are told apart by their address as the server sees it (put the gateway behind a proxy
that sets the client address, e.g. uvicorn's ``--proxy-headers``).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Protocol

from fastapi import Request

from services.gateway.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from shared.settings import Settings

__all__ = [
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "check_api_key",
    "enforce_rate_limit",
    "make_rate_limiter",
]

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    def hit(self, key: str) -> float:
        """Count a request of ``key``: 0 if allowed, else the seconds until one is."""
        ...


class MemoryRateLimiter:
    """GCRA per key in this process."""

    def __init__(self, per_minute: int) -> None:
        self.interval = 60.0 / per_minute
        self.tolerance = (per_minute - 1) * self.interval
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat.get(key, now), now)
            wait = tat - self.tolerance - now
            if wait > 0:
                return wait
            self._tat[key] = tat + self.interval
            if len(self._tat) > 100_000:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return 0.0


_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now) + 1000)
return 0
"""


class RedisRateLimiter:
    """The same GCRA in Redis, one budget for every gateway process."""

    def __init__(self, url: str, per_minute: int, *, prefix: str = "lookalike:recommend:") -> None:
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._client.register_script(_GCRA)
        self._interval_ms = max(1, round(60_000 / per_minute))
        self._tolerance_ms = (per_minute - 1) * self._interval_ms
        self._prefix = prefix
        self._local = MemoryRateLimiter(per_minute)
        self._warned_at = 0.0

    def hit(self, key: str) -> float:
        try:
            wait_ms = int(
                self._script(
                    keys=[self._prefix + key], args=[self._interval_ms, self._tolerance_ms]
                )
            )
        except self._errors as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limit: Redis unavailable (%s); limiting per process", exc)
            return self._local.hit(key)
        return wait_ms / 1000

    def close(self) -> None:
        self._client.close()


def make_rate_limiter(settings: Settings) -> RateLimiter | None:
    """Redis-backed when ``REDIS_URL`` is set, else in memory; ``None`` when turned off."""
    per_minute = settings.recommender.rate_limit_per_minute
    if per_minute <= 0:
        return None
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, per_minute)
    return MemoryRateLimiter(per_minute)


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def enforce_rate_limit(request: Request) -> None:
    """Dependency: 429 with ``Retry-After`` when the client is over its budget."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    wait = limiter.hit(client_key(request))
    if wait > 0:
        per_minute = request.app.state.settings.recommender.rate_limit_per_minute
        raise RateLimitedError(
            f"too many requests: at most {per_minute} a minute per client; retry in {wait:.1f} s",
            retry_after_s=wait,
        )


def check_api_key(request: Request) -> None:
    """Dependency of write/admin endpoints: with ``LOOKALIKE_API_KEY`` set, the request must
    carry it in ``X-API-Key`` (or ``Authorization: Bearer``): 401 without a key, 403 with a
    wrong one."""
    settings: Settings = request.app.state.settings
    if not settings.api_key:
        return
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if given is None:
        raise UnauthorizedError("this endpoint needs an API key (X-API-Key header)")
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ForbiddenError("the API key is not valid")
