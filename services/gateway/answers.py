"""The answers store: what binds storefront feedback to real answers.

Feedback without an API key (the storefront) must name the ``X-Request-ID`` of a
``/recommend`` answer of the last ``gateway.feedback_window_s`` that showed the product, and
each kind of event counts once per answer and product. With ``REDIS_URL`` set the answers live
in Redis (shared by every gateway replica; while Redis does not answer each process keeps its
own), else in this process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from shared.ratelimit import RedisBacked
from shared.settings import Settings

__all__ = ["MemoryAnswers", "RecentAnswers", "RedisAnswers", "make_answers"]


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
