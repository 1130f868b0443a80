"""Fine-tuning: the seeds' two-stage recipe, made to fit 2 CPU cores.

1. **Head on the frozen backbone.** Backbone features of the training images (plus a few
   augmented views of each) are computed once (in ONNX Runtime when installed, several times
   faster than eager PyTorch on a CPU) and cached; a softmax classifier (and, optionally, a
   256-d normalised-softmax metric head) trains on the cache in seconds.
2. **All layers at a lower rate.** The whole network trains with augmentation (random resized
   crop, flip, colour jitter) at a learning rate 10x below the heads', validated after each
   epoch (accuracy and leave-one-out P@10 on the validation split) with early stopping; the best
   epoch is kept. A time budget (``max_minutes``) ends stage 2 before an epoch that would not fit;
   with a checkpoint file, the run is saved after stage 1 and after each epoch, and a rerun
   resumes there (an hour-long Lite2 run survives being stopped).

Then temperature scaling on the validation split calibrates the classifier (ECE before and
after go into the model card), and the metric head is kept only if it beats the backbone
features at validation retrieval. Randomness comes from one seed: augmentations are drawn per
(seed, epoch, image), so thread scheduling does not change them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from lab.embedder.card import calibrate, choose_embedding, model_card, score_check, shop_retrieval
from lab.embedder.config import TrainConfig, TrainResult
from lab.embedder.data import LabelledImages, ShopCheck
from lab.embedder.heads import build_network
from lab.embedder.run import progress_bars, running, split_images, timed
from lab.embedder.stages import Checkpoints, finetune, fingerprint, run_stage1
from lab.resume import ResumableRun
from services.embedder.artifact import save_model
from services.embedder.network import resolve_device

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)


def train(
    images: LabelledImages,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    checks: Sequence[LabelledImages] = (),
    shop: ShopCheck | None = None,
    command: str | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Fine-tune ``config.backbone`` on ``images`` and write a model directory to ``out``.

    ``checks`` (labelled in ``images``' classes, never trained on) are scored by the final
    model into the card's ``metrics["checks"]``: e.g. query-time crops of held-out photos.
    ``shop`` measures retrieval into a shop catalog: ``metrics["street_to_shop"]``.
    ``command`` (the command line that reproduces the run) goes into the card's training record.
    With ``checkpoint``, the state after stage 1 and after every stage-2 epoch is saved there,
    and a later call on the same data with the same settings resumes after the last saved step
    (the time budget counts the resumed run; the card's time counts every run).
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    bar = progress_bars(progress)
    split = split_images(images, config)
    device = resolve_device(config.device)
    net, metric, size = build_network(config, len(split.classes), device, len(split.fine_labels))
    log.info(
        "training %s at %d px on %d images (%d train, %d val, %d classes), device %s",
        config.backbone,
        size,
        len(images),
        len(split.train_idx),
        len(split.val_idx),
        len(split.classes),
        device,
    )
    checkpoints: Checkpoints = ResumableRun(
        checkpoint, fingerprint(images, config), max_minutes=config.max_minutes, started=started
    )
    timings: dict[str, float] = dict(checkpoints.saved["timings"]) if checkpoints.saved else {}
    with running(config, split, net, metric, device, size) as run:
        stage1 = run_stage1(run, checkpoints, timings, bar)
        with timed(timings, "stage2_s"):
            if config.finetune_epochs > 0:
                finetune(run, checkpoints, stage1, timings, bar)
        best = checkpoints.best
        assert best is not None
        net.eval().cpu()
        calibration = calibrate(net, best.result, split.val_y)
        projection_kept, retrieval = choose_embedding(net, best.result)
        run.runner.invalidate()  # the best epoch's weights are loaded: export them once
        checked = [score_check(run, c) for c in checks]
        shopped = None if shop is None else shop_retrieval(run, shop)
    elapsed = checkpoints.elapsed()
    card = model_card(
        images,
        out,
        run,
        best=best,
        history=checkpoints.history,
        stage1=stage1,
        calibration=calibration,
        projection_kept=projection_kept,
        retrieval=retrieval,
        timings=timings,
        elapsed=elapsed,
    )
    if checked:
        card.metrics["checks"] = checked
    if shopped is not None:
        card.metrics["street_to_shop"] = shopped
    if command is not None:
        card.training["command"] = command
    card = save_model(net, card, out)
    log.info("saved %s to %s in %.0f s", card.version, out, elapsed)
    return TrainResult(card=card, out=Path(out))
