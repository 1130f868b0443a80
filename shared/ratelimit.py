"""The project's one rate limiter: GCRA (a token bucket without a refill timer) per key.

A key may make one request per ``interval_s`` in bursts of up to ``burst``. Two ways to use
it: :meth:`RateLimiter.hit` refuses a request over the budget (the gateway's per-client limits:
the caller answers 429 with the wait), :meth:`RateLimiter.acquire` queues it (ingest's per-host
download politeness: the caller sleeps its turn). Budgets live in this process
(:class:`MemoryRateLimiter`) or in Redis (:class:`RedisRateLimiter`, one budget for every
process; while Redis does not answer each process limits on its own).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisBacked",
    "RedisRateLimiter",
    "make_rate_limiter",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_KEYS = 100_000
"""Past this many keys the memory limiter forgets the ones whose budget is full again."""


class RateLimiter(ABC):
    """GCRA budgets per key."""

    @abstractmethod
    def take(self, key: str, interval_s: float, burst: int, *, queue: bool = False) -> float:
        """Count a request of ``key``: 0 when it is allowed now, else the seconds until it is.
        With ``queue`` it is counted anyway (its turn comes after the wait), else a request
        over the budget is refused and not counted."""

    def hit(self, key: str, per_minute: int) -> float:
        """At most ``per_minute`` requests a minute, in bursts of as many: 0 if this one is
        allowed, else the seconds until one is (not counted)."""
        return self.take(key, 60.0 / per_minute, per_minute)

    def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        """Wait until a request to ``key`` is allowed (a rate of 0: no limit); returns the
        seconds waited."""
        if rate_per_s <= 0:
            return 0.0
        wait = self.take(key, 1.0 / rate_per_s, burst, queue=True)
        if wait > 0:
            time.sleep(wait)
        return wait

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class MemoryRateLimiter(RateLimiter):
    """GCRA per key in this process."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, key: str, interval_s: float, burst: int, *, queue: bool = False) -> float:
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat.get(key, now), now)
            wait = tat - now - (burst - 1) * interval_s
            if wait > 0 and not queue:
                return wait
            self._tat[key] = tat + interval_s
            if len(self._tat) > _MAX_KEYS:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return max(0.0, wait)

    def close(self) -> None:
        """Nothing to release."""


class RedisBacked:
    """A Redis client with short timeouts; while Redis does not answer, a local fallback."""

    def __init__(self, url: str, *, timeout_s: float = 0.5) -> None:
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._warned_at = 0.0

    def _try(self, call: Callable[[], T], fallback: Callable[[], T]) -> T:
        try:
            return call()
        except self._errors as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning(
                    "%s: Redis unavailable (%s); this process decides alone",
                    type(self).__name__,
                    exc,
                )
            return fallback()

    def close(self) -> None:
        self._client.close()


_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * interval
if wait > 0 and ARGV[3] == '0' then return wait end
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now) + 1000)
return wait
"""
"""GCRA in milliseconds of Redis's clock: ARGV interval, burst, queue (1/0)."""


class RedisRateLimiter(RedisBacked, RateLimiter):
    """The same GCRA in Redis (keys ``prefix + key``), one budget for every process."""

    def __init__(
        self, url: str, *, prefix: str = "lookalike:ratelimit:", timeout_s: float = 0.5
    ) -> None:
        super().__init__(url, timeout_s=timeout_s)
        self._script = self._client.register_script(_GCRA)
        self._prefix = prefix
        self._local = MemoryRateLimiter()

    def take(self, key: str, interval_s: float, burst: int, *, queue: bool = False) -> float:
        def remote() -> float:
            args = [max(1, round(interval_s * 1000)), burst, int(queue)]
            return int(self._script(keys=[self._prefix + key], args=args)) / 1000

        return self._try(remote, lambda: self._local.take(key, interval_s, burst, queue=queue))


def make_rate_limiter(
    redis_url: str | None, *, prefix: str = "lookalike:ratelimit:", timeout_s: float = 0.5
) -> RateLimiter:
    """In Redis when ``redis_url`` is given (budgets shared by every process), else in
    memory."""
    if redis_url:
        return RedisRateLimiter(redis_url, prefix=prefix, timeout_s=timeout_s)
    return MemoryRateLimiter()
