"""The fast CPU serving path: export an :class:`EmbeddingNet` to ONNX, run it with ONNX Runtime.

On 2 CPU cores ONNX Runtime runs EfficientNet-Lite0 several times faster than eager PyTorch
(batch-norm folding, fused kernels; see BENCHMARKS.md); outputs match PyTorch to a cosine of
0.9999+ (tests/unit/test_embedder_onnx.py).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.errors import ConfigurationError

__all__ = [
    "EXPORT_LOCK",
    "OnnxSession",
    "export_once",
    "export_onnx",
    "export_text_onnx",
    "onnxruntime_available",
]

log = logging.getLogger(__name__)

OPSET = 17


def onnxruntime_available() -> bool:
    """Whether the ``onnx`` and ``onnxruntime`` packages are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Outputs(nn.Module):
    """Give the exporter plain tensors: the embedding, plus logits when there is a head."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding, logits = self.net(x)
        return (embedding,) if logits is None else (embedding, logits)


EXPORT_LOCK = threading.RLock()
"""Held around every ``torch.onnx.export`` of this process: the TorchScript exporter keeps
process-global state, so two threads exporting at once (the embedded stack's ingest consumer,
the gateway's warm-up and a first request, each loading a model) fail with
``GLOBALS.in_onnx_export must be False``."""


def export_once(
    module: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    input_name: str = "images",
) -> Path:
    """Export ``module`` to ``path`` unless another caller already did: the one way this
    process writes an ONNX file (the embedder's and the detector's networks alike).

    Serialised by :data:`EXPORT_LOCK` (the exporter is not thread-safe) and written to a
    temporary file that is renamed into place, so concurrent processes never read a half
    written model.
    """
    if not onnxruntime_available():
        raise ConfigurationError("ONNX export needs the onnx and onnxruntime packages")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with EXPORT_LOCK:
        if target.is_file():
            return target
        log.info("exporting %s to ONNX (once per model and version)", target)
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
        os.close(fd)
        try:
            with warnings.catch_warnings():
                # The TorchScript-based exporter is deprecated in favour of the dynamo one,
                # which needs onnxscript; this one still exports these CNNs exactly and quickly.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module.eval(),
                    (example,),
                    tmp,
                    input_names=[input_name],
                    output_names=output_names,
                    dynamic_axes=dynamic_axes,
                    opset_version=OPSET,
                    dynamo=False,
                )
            Path(tmp).replace(target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target


def export_onnx(net: nn.Module, path: str | Path, input_size: int) -> Path:
    """Export ``net`` (``x -> (embedding, logits | None)``) to ``path`` with a dynamic batch."""
    wrapper = _Outputs(net).eval().cpu()
    example = torch.zeros(1, 3, input_size, input_size)
    with torch.inference_mode():
        has_logits = len(wrapper(example)) == 2
    outputs = ["embedding", "logits"] if has_logits else ["embedding"]
    axes = {name: {0: "batch"} for name in ["images", *outputs]}
    return export_once(wrapper, example, path, output_names=outputs, dynamic_axes=axes)


def export_text_onnx(tower: nn.Module, path: str | Path, context_length: int) -> Path:
    """Export a text tower (``token ids (N, context_length) -> (N, dim)``) to ``path`` with a
    dynamic batch; its input is ``tokens``."""
    example = torch.zeros(1, context_length, dtype=torch.long)
    axes = {"tokens": {0: "batch"}, "embedding": {0: "batch"}}
    return export_once(
        tower.eval().cpu(),
        example,
        path,
        output_names=["embedding"],
        dynamic_axes=axes,
        input_name="tokens",
    )


def session_options(threads: int | None = None) -> object:
    """CPU session options for every model the project serves (embedder, classifier, detector).

    Threads per call: ``threads``, else torch's (all cores). Idle threads sleep instead of
    spinning: with several sessions serving concurrent requests, spinning threads burn the cores
    the others need (POST /recommend, 8 clients on 2 cores: 7.7 -> 11.9 requests/s for the
    embedder's sessions, then 11.3 -> 12.4 when the detector's stopped spinning too)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxSession:
    """An ONNX Runtime CPU session returning ``(embedding, logits | None)``."""

    def __init__(
        self, path: str | Path, threads: int | None = None, *, input_name: str = "images"
    ) -> None:
        import onnxruntime as ort

        options = session_options(threads)
        self.path = Path(path)
        self._session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [output.name for output in self._session.get_outputs()]
        self._input = input_name

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        results = self._session.run(self._outputs, {self._input: batch})
        embedding = np.asarray(results[0], dtype=np.float32)
        logits = np.asarray(results[1], dtype=np.float32) if len(results) > 1 else None
        return embedding, logits
