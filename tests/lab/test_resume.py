"""One resumable run for both trainers: checkpoints keyed by a fingerprint, the time of every
run, a time budget and the best epoch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.resume import BestEpoch, ResumableRun
from shared.errors import InvalidInputError

pytestmark = pytest.mark.unit


def test_the_best_epoch_keeps_only_a_higher_score_and_takes_its_state_only_then() -> None:
    taken: list[int] = []

    def state(epoch: int) -> dict[str, int]:
        taken.append(epoch)
        return {"weights": epoch}

    best: BestEpoch[str] = BestEpoch(0, 0.5, "stage 1")
    assert best.offer(1, 0.7, "one", lambda: state(1))
    assert not best.offer(2, 0.7, "two", lambda: state(2)), "a tie keeps the earlier epoch"
    assert not best.offer(3, 0.6, "three", lambda: state(3))
    assert (best.epoch, best.score, best.result, best.state) == (1, 0.7, "one", {"weights": 1})
    assert taken == [1]


def test_a_run_resumes_after_its_last_saved_epoch_with_history_best_and_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.pt"
    first: ResumableRun[None] = ResumableRun(path, {"data": "abc"}, max_minutes=None)
    assert not first.resumed and first.epoch == 0
    first.best = BestEpoch(1, 0.4, None, {"w": 1})
    first.history.append({"epoch": 1, "loss": 0.9})
    time.sleep(0.05)
    first.save(1, optimiser={"lr": 0.1})

    second: ResumableRun[None] = ResumableRun(path, {"data": "abc"}, max_minutes=None)
    assert second.resumed and second.epoch == 1
    assert second.saved is not None and second.saved["optimiser"] == {"lr": 0.1}
    assert second.history == [{"epoch": 1, "loss": 0.9}]
    assert second.best == BestEpoch(1, 0.4, None, {"w": 1})
    assert second.elapsed() >= 0.05, "the time of the run it resumes counts"

    with pytest.raises(InvalidInputError, match="other data or settings"):
        ResumableRun(path, {"data": "other"}, max_minutes=None)


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    run: ResumableRun[None] = ResumableRun(None, {"data": "abc"}, max_minutes=None)
    run.save(1, weights={})
    assert run.epoch == 1
    assert list(tmp_path.iterdir()) == []


def test_a_broken_checkpoint_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="not a readable training checkpoint"):
        ResumableRun(path, {}, max_minutes=None)
    assert path.read_bytes() == b"not a checkpoint"


def test_the_time_budget_counts_this_run_from_its_start_or_from_start_budget() -> None:
    started = time.perf_counter() - 120
    run: ResumableRun[None] = ResumableRun(None, {}, max_minutes=1.0, started=started)
    assert run.out_of_time(), "two minutes spent of one"
    run.start_budget()
    assert not run.out_of_time()
    assert run.out_of_time(next_s=61), "another epoch of 61 s would not fit"
    unlimited: ResumableRun[None] = ResumableRun(None, {}, max_minutes=None, started=started)
    assert not unlimited.out_of_time(next_s=1e9)
