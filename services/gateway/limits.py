"""Per-client rate limits, API keys, and what binds storefront feedback to real answers.

The rate limit is GCRA (a token bucket without a refill timer): at most
``gateway.rate_limit_per_minute`` requests to ``POST /recommend`` a minute per client (and
``gateway.feedback_rate_limit_per_minute`` to ``POST /feedback`` without an API key), in bursts
up to the same number. With ``REDIS_URL`` set the budgets live in Redis (shared by every
gateway replica; while Redis does not answer each process limits on its own), else in this
process. Clients are told apart by their address; ``X-Forwarded-For`` counts only from the
proxies in ``gateway.trusted_proxies`` (the app applies it, see
:func:`services.gateway.app.create_app`).

Feedback without an API key (the storefront) must name the ``X-Request-ID`` of a
``/recommend`` answer of the last ``gateway.feedback_window_s`` that showed the product, and
each kind of event counts once per answer and product (:class:`RecentAnswers`).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from fastapi import Request

from services.gateway.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from shared.ratelimit import RateLimiter, RedisBacked
from shared.ratelimit import make_rate_limiter as shared_rate_limiter
from shared.settings import Settings

__all__ = [
    "MemoryAnswers",
    "RecentAnswers",
    "RedisAnswers",
    "check_api_key",
    "enforce_feedback_limit",
    "enforce_rate_limit",
    "make_answers",
    "make_rate_limiter",
]


def make_rate_limiter(settings: Settings, per_minute: int, *, prefix: str) -> RateLimiter | None:
    """Budgets in Redis (keys under ``prefix``) when ``REDIS_URL`` is set, else in memory;
    ``None`` when ``per_minute`` is 0 (turned off)."""
    if per_minute <= 0:
        return None
    return shared_rate_limiter(settings.redis_url, prefix=prefix)


class RecentAnswers(Protocol):
    def remember(self, request_id: str, product_ids: Iterable[int]) -> None:
        """Note that the answer ``request_id`` showed these products."""
        ...

    def take(self, request_id: str, product_id: int, kind: str) -> bool | None:
        """Count one ``kind`` event for the product of that answer: True the first time,
        False when it was counted already, None when no recent answer showed the product."""
        ...


class MemoryAnswers:
    """Recent answers in this process (at most ``max_answers``, the oldest go first)."""

    def __init__(self, window_s: float, *, max_answers: int = 100_000) -> None:
        self.window_s = window_s
        self.max_answers = max_answers
        self._answers: OrderedDict[str, tuple[float, frozenset[int], set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, request_id: str, product_ids: Iterable[int]) -> None:
        with self._lock:
            now = time.monotonic()
            self._answers[request_id] = (now + self.window_s, frozenset(product_ids), set())
            self._answers.move_to_end(request_id)
            while self._answers and (
                len(self._answers) > self.max_answers or next(iter(self._answers.values()))[0] < now
            ):
                self._answers.popitem(last=False)

    def take(self, request_id: str, product_id: int, kind: str) -> bool | None:
        with self._lock:
            answer = self._answers.get(request_id)
            if answer is None or answer[0] < time.monotonic() or product_id not in answer[1]:
                return None
            event = f"{product_id}:{kind}"
            if event in answer[2]:
                return False
            answer[2].add(event)
            return True


_TAKE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""


class RedisAnswers(RedisBacked):
    """Recent answers in Redis (a set of product ids per answer, expiring with the window),
    shared by every gateway process."""

    def __init__(self, url: str, window_s: int, *, prefix: str = "lookalike:answer:") -> None:
        super().__init__(url)
        self._script = self._client.register_script(_TAKE)
        self.window_s = window_s
        self._prefix = prefix
        self._local = MemoryAnswers(window_s)

    def remember(self, request_id: str, product_ids: Iterable[int]) -> None:
        ids = sorted(set(product_ids))
        self._local.remember(request_id, ids)
        if not ids:
            return

        def remote() -> None:
            key = self._prefix + request_id
            pipe = self._client.pipeline()
            pipe.sadd(key, *ids)
            pipe.expire(key, self.window_s)
            pipe.execute()

        self._try(remote, lambda: None)

    def take(self, request_id: str, product_id: int, kind: str) -> bool | None:
        def remote() -> bool | None:
            keys = [self._prefix + request_id, f"{self._prefix}{request_id}:{product_id}:{kind}"]
            taken = int(self._script(keys=keys, args=[product_id, self.window_s]))
            return None if taken < 0 else taken == 1

        return self._try(remote, lambda: self._local.take(request_id, product_id, kind))


def make_answers(settings: Settings) -> RecentAnswers:
    """Redis-backed when ``REDIS_URL`` is set, else in memory."""
    window = settings.gateway.feedback_window_s
    return RedisAnswers(settings.redis_url, window) if settings.redis_url else MemoryAnswers(window)


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


def check_api_key(request: Request) -> bool:
    """With ``LOOKALIKE_API_KEY`` set, the request must carry it in ``X-API-Key`` (or
    ``Authorization: Bearer``): 401 without a key, 403 with a wrong one, True with the right
    one. Without a key configured: False (an anonymous caller, e.g. the storefront)."""
    settings: Settings = request.app.state.settings
    if not settings.api_key:
        return False
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if given is None:
        raise UnauthorizedError("this endpoint needs an API key (X-API-Key header)")
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ForbiddenError("the API key is not valid")
    return True
