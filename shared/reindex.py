"""The reindex contract: what ``POST /admin/reindex`` takes, what it and ``GET /admin/reindex``
answer, and the runner a process that owns the index installs in its gateway
(``app.state.reindex``). ``lookalike reindex`` speaks it to a running ``lookalike run``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from shared.errors import LookalikeError

__all__ = [
    "CannotReindexError",
    "ReindexProgress",
    "ReindexRequest",
    "ReindexRunner",
    "ReindexRunningError",
]


class ReindexRequest(BaseModel):
    """Which model to embed the catalog with (the options of ``lookalike reindex``)."""

    model: str | None = Field(
        default=None,
        max_length=1000,
        description="Registry backbone or trained model directory (default: the active model).",
    )
    weights: str = Field(default="imagenet", max_length=200)
    runtime: Literal["auto", "torch", "onnx"] = "auto"
    device: str = Field(default="auto", max_length=20, description="auto, cpu, cuda.")
    licence: str = Field(
        default="", max_length=100, description="A foundation model's weights' licence (card)."
    )
    settle_s: float = Field(
        default=5.0, ge=0, le=600, description="Seconds for workers to switch models."
    )
    drop_old: bool = Field(default=False, description="Drop the previous collection after.")
    everything: bool = Field(default=False, description="Re-embed images already embedded.")


class ReindexProgress(BaseModel):
    """A reindex as it runs and once it ended (also the in-process command's report)."""

    state: Literal["running", "done", "failed"] = "running"
    phase: str = Field(default="loading the model", examples=["embedding", "switching"])
    model_version: str | None = None
    collection: str | None = None
    previous: str | None = None
    total: int = 0
    embedded: int = 0
    failed: int = 0
    skipped: int = 0
    passes: int = 0
    started_at: datetime | None = None
    seconds: float = 0.0
    error: str | None = None
    failures: list[str] = Field(default_factory=list, description="The first failed images.")

    def line(self) -> str:
        """One short progress line: ``reindex: embedding 40 of 96 images into catalog-x``."""
        done = self.embedded + self.failed
        text = f"reindex: {self.phase}"
        if self.total:
            text += f" {done} of {self.total} images"
        if self.collection:
            text += f" into {self.collection}"
        if self.failed:
            text += f" ({self.failed} failed)"
        if self.error:
            text += f": {self.error}"
        return text


class ReindexRunner(Protocol):
    """One reindex at a time in the process that owns the index."""

    def start(self, request: ReindexRequest) -> ReindexProgress:
        """Start one in the background; :class:`ReindexRunningError` while one runs."""
        ...

    def progress(self) -> ReindexProgress | None:
        """The running or last reindex of this process, None before the first."""
        ...


class ReindexRunningError(LookalikeError):
    status_code = 409
    code = "reindex_running"


class CannotReindexError(LookalikeError):
    """This process does not own an index it could reindex (the detail says why)."""

    status_code = 409
    code = "cannot_reindex"
