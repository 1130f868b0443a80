"""The base of every served model: loaded on first use, once per instance, from any thread."""

from __future__ import annotations

import threading
from typing import Self

__all__ = ["LoadOnce"]


class LoadOnce:
    """Subclasses implement :meth:`_load` (build the network, open the ONNX session);
    :meth:`load` runs it once however many threads ask at the same time, and every later call
    returns at once. A load that raises is tried again by the next call."""

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
