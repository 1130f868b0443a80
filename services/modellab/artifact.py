"""Model artifacts, whatever the network: a directory with fp16 weights and a JSON card.

```
MODEL_DIR/
  model.json    the card (a pydantic model of the embedder's or the detector's own)
  weights.pt    a state dict, floating tensors stored as float16
```
The version is content-addressed (``<name>-<sha256 of weights.pt>[:10]``), so every stored
vector or box can name exactly the model that made it. The embedder's
(:mod:`services.embedder.artifact`) and the detector's (:mod:`services.detector.artifact`) cards
and loaders stand on these.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ValidationError

from shared.errors import ConfigurationError, NotFoundError

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "is_model_dir",
    "read_card",
    "write_artifact",
    "write_card",
]

CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
CardT = TypeVar("CardT", bound=BaseModel)


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a model card."""
    return (Path(path) / CARD_FILE).is_file()


def read_card(path: str | Path, card_type: type[CardT], *, kind: str, max_version: int) -> CardT:
    """Read and validate ``PATH/model.json`` as ``card_type`` (a model or detector card)."""
    card_path = Path(path) / CARD_FILE
    if not card_path.is_file():
        raise NotFoundError(f"no {kind} at {path}: {CARD_FILE} is missing")
    try:
        card = card_type.model_validate_json(card_path.read_text())
    except ValidationError as exc:
        raise ConfigurationError(f"{card_path} is not a valid {kind} card: {exc}") from exc
    version = int(getattr(card, "format_version", 1))
    if version > max_version:
        raise ConfigurationError(
            f"{card_path} has format {version}; this Lookalike reads up to {max_version}"
        )
    return card


def write_card(card: CardT, out: str | Path) -> CardT:
    """Write ``out/model.json`` (the weights and version stay as they are)."""
    (Path(out) / CARD_FILE).write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
    return card


def write_artifact(
    state: dict[str, torch.Tensor], card: CardT, out: str | Path, **updates: Any
) -> CardT:
    """Save ``state`` (floats as float16) and the card in ``out``; the card comes back with
    ``version`` (name + weights digest), ``weights_bytes`` and ``updates`` filled in."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / WEIGHTS_FILE
    torch.save(
        {
            key: (value.half() if value.is_floating_point() else value).detach().cpu().contiguous()
            for key, value in state.items()
        },
        weights_path,
    )
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    name = card.name  # type: ignore[attr-defined]
    card = card.model_copy(
        update={
            "version": f"{name}-{digest[:10]}",
            "weights_bytes": weights_path.stat().st_size,
            **updates,
        }
    )
    return write_card(card, out_dir)
