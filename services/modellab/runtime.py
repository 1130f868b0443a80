"""The base of every served model: loaded on first use, once per instance, from any thread."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar, Self

__all__ = ["LoadOnce"]


class LoadOnce:
    """Subclasses implement :meth:`_load` (build the network, open the ONNX session);
    :meth:`load` runs it once however many threads ask at the same time, and every later call
    returns at once. A load that raises is tried again by the next call."""

    _announced: ClassVar[set[str]] = set()
    _announce_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._is_loaded = False

    @property
    def loaded(self) -> bool:
        return self._is_loaded

    def load(self) -> Self:
        if not self._is_loaded:
            with self._load_lock:
                if not self._is_loaded:
                    self._load()
                    self._is_loaded = True
        return self

    def _load(self) -> None:
        raise NotImplementedError

    @classmethod
    def announce(cls, log: logging.Logger, message: str, *args: Any) -> None:
        """Log ``message`` at INFO the first time this process says it, at DEBUG after: the
        embedded stack's gateway and ingest worker each load their own copy of a model, and
        the console should say it once."""
        line = message % args
        with cls._announce_lock:
            first = line not in cls._announced
            cls._announced.add(line)
        log.log(logging.INFO if first else logging.DEBUG, "%s", line)
