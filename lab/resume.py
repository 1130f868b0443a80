"""One resumable training run, for both trainers: fingerprinted checkpoints, the time of every
run, a time budget and the best epoch.

A checkpoint carries a *fingerprint* of the data and of the settings that shape the run; a run
resumes only from a checkpoint of the same fingerprint, and refuses any other one (starting over
silently would discard hours of work; resuming a different run would mix two recipes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from shared.errors import InvalidInputError

__all__ = ["BestEpoch", "ResumableRun", "load_checkpoint", "save_checkpoint"]

log = logging.getLogger(__name__)

R = TypeVar("R")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a run killed while saving keeps the previous checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path | None, fingerprint: Any) -> dict[str, Any] | None:
    """The state saved at ``path`` by a run of the same ``fingerprint``; ``None`` when there is
    no checkpoint to resume. A checkpoint of other data or settings is refused."""
    if path is None or not path.is_file():
        return None
    import torch

    try:
        saved: dict[str, Any] = torch.load(path, weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which
        raise InvalidInputError(f"{path} is not a readable training checkpoint: {exc}") from exc
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        raise InvalidInputError(
            f"{path} is a checkpoint of other data or settings; remove it to start over"
        )
    return saved


@dataclass
class BestEpoch(Generic[R]):
    """The best epoch so far: its number (0: none yet, or the state before the first epoch), its
    score, what its validation gave, and the trained weights then (``None``: not taken)."""

    epoch: int
    score: float
    result: R
    state: dict[str, Any] | None = None

    def offer(
        self, epoch: int, score: float, result: R, state: Callable[[], dict[str, Any]]
    ) -> bool:
        """Keep ``epoch`` if it scores higher than the best so far (``state`` is taken only
        then); whether it did."""
        if not score > self.score:
            return False
        self.epoch, self.score, self.result, self.state = epoch, score, result, state()
        return True


class ResumableRun(Generic[R]):
    """A training run that survives being stopped.

    With a ``path``, :meth:`save` writes a checkpoint after each step (nothing without one), and
    a run of the same ``fingerprint`` resumes from it: :attr:`saved` holds the trainer's own
    state, :attr:`epoch` the last finished epoch, and :attr:`history` and :attr:`best` come back
    as they were. :meth:`elapsed` counts this run and the runs it resumes; the time budget
    (``max_minutes``, ``None``: none) counts this run only, from ``started`` or from
    :meth:`start_budget`.
    """

    def __init__(
        self,
        path: Path | None,
        fingerprint: Any,
        *,
        max_minutes: float | None,
        started: float | None = None,
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.max_minutes = max_minutes
        self.started = time.perf_counter() if started is None else started
        self._budget_from = self.started
        self.saved = load_checkpoint(path, fingerprint)
        saved = self.saved or {}
        self.epoch: int = saved.get("epoch", 0)
        self.earlier_s: float = saved.get("elapsed_s", 0.0)
        self.history: list[dict[str, Any]] = saved.get("history", [])
        self.best: BestEpoch[R] | None = saved.get("best")
        if self.saved is not None:
            log.info("resuming %s after epoch %d", path, self.epoch)

    @property
    def resumed(self) -> bool:
        """Whether this run goes on from a checkpoint."""
        return self.saved is not None

    def elapsed(self) -> float:
        """Seconds of training, this run's and the runs it resumes."""
        return self.earlier_s + time.perf_counter() - self.started

    def start_budget(self) -> None:
        """Count the time budget from now (e.g. after a feature cache that is not training)."""
        self._budget_from = time.perf_counter()

    def out_of_time(self, next_s: float = 0.0) -> bool:
        """Whether ``next_s`` more seconds (e.g. another epoch as long as the last) would pass
        the time budget."""
        if self.max_minutes is None:
            return False
        return (time.perf_counter() - self._budget_from + next_s) / 60 > self.max_minutes

    def save(self, epoch: int, **state: Any) -> None:
        """Checkpoint the run after ``epoch``: the history, the best epoch, the time so far and
        the trainer's ``state`` (weights, optimiser, schedule, sampling ...)."""
        self.epoch = epoch
        if self.path is None:
            return
        save_checkpoint(
            self.path,
            {
                **state,
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "history": self.history,
                "best": self.best,
                "elapsed_s": self.elapsed(),
            },
        )
