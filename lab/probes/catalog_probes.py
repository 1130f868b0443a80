"""Catalog article types (``catalog-products-dev``, 56 classes): linear heads on frozen
EfficientNet-Lite features, each trunk alone and all of them concatenated, with and without
flip test-time augmentation.

The split is the trainer's (``lookalike train --label-column articleType``: a fifth of each
class validates, seed 0), so the figures sit next to the trained models' in BENCHMARKS.md.
Each head is trained with two seeds (``classifier_probes.probe``) and the accuracies averaged.
Features: about 20 minutes on 2 cores for the three trunks, clean and mirrored::

    .venv/bin/python -m lab.probes.catalog_probes [--data ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab.embedder.data import load_labelled, stratified_split
from lab.probes.classifier_probes import features, probe

TRUNKS = (("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260))
VIEWS = ("clean", "flip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    images = load_labelled(
        args.data / "catalog-products-dev" / "labels.csv", "articleType", min_per_class=2
    )
    train, val = stratified_split(images, 0.2, 0)
    y = images.targets(images.classes)
    domain = images.domain
    trunks: dict[str, dict[str, torch.Tensor]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backbone, size in TRUNKS:
            folder = Path(tmp) / backbone  # each trunk its own exported graph
            folder.mkdir()
            found = features(images, "crop", folder, backbone, size, views=VIEWS)
            trunks[backbone] = {view: torch.from_numpy(found[view]) for view in VIEWS}
            print(f"{backbone}: features {tuple(found['clean'].shape)}", flush=True)
    trunks["all three, concatenated"] = {
        view: torch.cat([trunks[b][view] for b, _ in TRUNKS], dim=1) for view in VIEWS
    }
    report: list[dict[str, Any]] = []
    for name, x in trunks.items():
        for smoothing in (0.0, 0.1):
            runs = [
                probe(x, y, domain, train, [val], views=VIEWS, smoothing=smoothing, seed=s)
                for s in (0, 1)
            ]
            plain, flip = np.mean(runs, axis=0).round(3).tolist()
            row = {"trunk": name, "smoothing": smoothing, "accuracy": plain, "flip_tta": flip}
            report.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{len(train)} training images, {len(val)} validation, {len(images.classes)} classes")
    print("| trunk | label smoothing | accuracy | + flip TTA |\n|---|---|---|---|")
    for r in report:
        print(f"| {r['trunk']} | {r['smoothing']} | {r['accuracy']:.3f} | {r['flip_tta']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
