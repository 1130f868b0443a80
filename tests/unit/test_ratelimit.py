"""GCRA arithmetic of the in-memory rate limiter, on a clock the test moves (the Redis one
runs the same arithmetic: tests/integration/test_ratelimit_redis.py)."""

from __future__ import annotations

import pytest

from shared import ratelimit
from shared.ratelimit import MemoryRateLimiter, make_rate_limiter

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(ratelimit.time, "sleep", fake.sleep)
    return fake


def test_hit_allows_a_burst_then_refuses_without_counting(clock: Clock) -> None:
    limiter = MemoryRateLimiter()
    assert [limiter.hit("a", per_minute=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.hit("a", per_minute=3) == pytest.approx(20.0)  # one every 20 s
    assert limiter.hit("a", per_minute=3) == pytest.approx(20.0)  # a refusal costs nothing
    assert limiter.hit("b", per_minute=3) == 0.0  # per key
    clock.now += 20.0
    assert limiter.hit("a", per_minute=3) == 0.0
    assert limiter.hit("a", per_minute=3) == pytest.approx(20.0)
    clock.now += 60.0  # a full budget again
    assert [limiter.hit("a", per_minute=3) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_acquire_queues_each_request_behind_the_last(clock: Clock) -> None:
    limiter = MemoryRateLimiter()
    waits = [limiter.acquire("host", rate_per_s=20.0, burst=2) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.05, 0.05])
    assert clock.slept == pytest.approx([0.05, 0.05])
    assert limiter.acquire("host", rate_per_s=0.0, burst=1) == 0.0  # rate 0: no limit


def test_take_in_queue_mode_counts_every_request(clock: Clock) -> None:
    limiter = MemoryRateLimiter()
    waits = [limiter.take("k", 1.0, 1, queue=True) for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 2.0])
    assert limiter.take("k", 1.0, 1) == pytest.approx(3.0)


def test_factory_picks_memory_without_redis() -> None:
    assert isinstance(make_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(make_rate_limiter(""), MemoryRateLimiter)
