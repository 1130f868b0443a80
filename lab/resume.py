"""Training checkpoints: the state after each epoch, so that a killed run resumes where it was.

A checkpoint carries a *fingerprint* of the data and of the settings that shape the run; a run
resumes only from a checkpoint of the same fingerprint, and refuses any other one (starting over
silently would discard hours of work; resuming a different run would mix two recipes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.errors import InvalidInputError

__all__ = ["load_checkpoint", "save_checkpoint"]


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
