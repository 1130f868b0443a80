"""The Redis rate limiter: the GCRA arithmetic of the memory one, on Redis's clock and shared
by every limiter on the same Redis; the memory one while Redis does not answer."""

from __future__ import annotations

import time

import pytest

from shared.ratelimit import RedisRateLimiter, make_rate_limiter

pytestmark = pytest.mark.integration


def test_hit_allows_a_burst_then_refuses_without_counting(redis_db_url: str) -> None:
    a = make_rate_limiter(redis_db_url, prefix="test:hit:")
    b = make_rate_limiter(redis_db_url, prefix="test:hit:")
    try:
        assert isinstance(a, RedisRateLimiter)
        assert [a.hit("client", 3), b.hit("client", 3), a.hit("client", 3)] == [0.0, 0.0, 0.0]
        wait = b.hit("client", 3)
        assert 19.9 < wait <= 20.0  # one every 20 s, across limiters
        assert 19.9 < a.hit("client", 3) <= 20.0  # a refusal costs nothing
        assert a.hit("other", 3) == 0.0
    finally:
        a.close()
        b.close()


def test_take_in_queue_mode_counts_every_request(redis_db_url: str) -> None:
    limiter = RedisRateLimiter(redis_db_url, prefix="test:queue:")
    try:
        waits = [limiter.take("host", 10.0, 2, queue=True) for _ in range(4)]
        assert waits[:2] == [0.0, 0.0]
        assert 9.9 < waits[2] <= 10.0
        assert 19.9 < waits[3] <= 20.0
        assert 29.9 < limiter.take("host", 10.0, 2) <= 30.0
    finally:
        limiter.close()


def test_without_redis_each_process_limits_alone() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", prefix="test:down:", timeout_s=0.2)
    started = time.monotonic()
    try:
        assert [limiter.hit("client", 2) for _ in range(2)] == [0.0, 0.0]
        assert limiter.hit("client", 2) == pytest.approx(30.0, abs=1.0)
    finally:
        limiter.close()
    assert time.monotonic() - started < 5
