"""Loading the query models in the background, with a readiness check that tells the truth.

The gateway answers ``/healthz`` at once, but it is not *ready* until its detector and
embedder (with the classifier) are loaded: on a first run that includes exporting them to ONNX,
which takes seconds. :class:`ModelWarmup` loads them on a worker thread; a failed load is
retried with backoff, and until one succeeds ``/readyz`` answers 503 with the reason. A request
that arrives meanwhile loads the same models through their own locks (each loads once per
process), so it waits for the load instead of failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.health import Check

log = logging.getLogger(__name__)

RETRY_AFTER_S = (2.0, 5.0, 15.0, 60.0)
"""Waits between failed loads; the last one repeats."""


def _loader(thing: Any) -> Callable[[], Any] | None:
    load = getattr(thing, "warm", None) or getattr(thing, "load", None)
    return load if callable(load) else None


class ModelWarmup:
    """Loads ``things`` (anything with ``warm()`` or ``load()``) once, retrying on failure."""

    def __init__(self, *things: Any) -> None:
        self._loaders = [load for load in map(_loader, things) if load is not None]
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None
        self._started = time.monotonic()
        self.seconds: float | None = None
        """How long the models took to load, once they have."""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self) -> None:
        """Load every model; on failure wait and try again until stopped."""
        attempt = 0
        while not self._stop.is_set():
            try:
                for load in self._loaders:
                    load()
            except Exception as exc:  # noqa: BLE001 - any failure is reported and retried
                self._error = f"{exc.__class__.__name__}: {exc}"
                delay = RETRY_AFTER_S[min(attempt, len(RETRY_AFTER_S) - 1)]
                log.warning(
                    "could not load the models (%s); retrying in %.0f s", self._error, delay
                )
                attempt += 1
                self._stop.wait(delay)
                continue
            self._error = None
            self.seconds = time.monotonic() - self._started
            self._ready.set()
            return

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the models are loaded; False on timeout."""
        return self._ready.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> Check:
        """Ready once every model is loaded; the last error while it is not."""
        if self.ready:
            return Check("models", True, f"loaded in {self.seconds:.1f} s", 0.0)
        waited = time.monotonic() - self._started
        detail = f"loading for {waited:.0f} s"
        if self._error:
            detail += f"; last attempt failed: {self._error}"
        return Check("models", False, detail, 0.0)
