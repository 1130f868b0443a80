"""Contact sheet of a garment classifier's mistakes on the street-crop validation half.

The half is the one ``lookalike train --val-fraction 0.5`` validates on (``stratified_split``,
seed 0). Each wrong crop is drawn with ``truth -> predicted``, and the most frequent confusions
are printed: the way to see whether an error is the model's or the crop's (a crop labelled
with one garment that shows two)::

    .venv/bin/python -m lab.probes.classifier_mistakes --out mistakes.png \
        [--model services/embedder/artifacts/street-lite0] [--data ../shared/data/street-crops-dev]

A catalog model's mistakes on its own validation split (a fifth of each class)::

    .venv/bin/python -m lab.probes.classifier_mistakes --out mistakes.png --model DIR \
        --data ../shared/data/catalog-products-dev/labels.csv --label-column articleType \
        --val-fraction 0.2 --min-per-class 2
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from lab.embedder.data import load_labelled, stratified_split
from services.embedder.inference import Embedder

CELL = 160
COLUMNS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="The PNG contact sheet.")
    parser.add_argument(
        "--model", default="services/embedder/artifacts/street-lite0", help="A classifier."
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/street-crops-dev"))
    parser.add_argument("--val-fraction", type=float, default=0.5)
    parser.add_argument("--label-column", default=None, help="The label column of a CSV.")
    parser.add_argument("--min-per-class", type=int, default=1, help="The trainer's.")
    args = parser.parse_args()
    street = load_labelled(args.data, args.label_column, min_per_class=args.min_per_class)
    _, val = stratified_split(street, args.val_fraction, 0)
    paths = [street.paths[i] for i in val]
    truth = [street.labels[i] for i in val]
    predictions = Embedder(args.model).predict([str(p) for p in paths], top=1)
    wrong = [
        (path, label, p.category)
        for path, label, p in zip(paths, truth, predictions, strict=True)
        if p.category != label
    ]
    print(f"{len(wrong)} of {len(val)} validation crops wrong ({1 - len(wrong) / len(val):.3f})")
    for (label, predicted), n in Counter((t, p) for _, t, p in wrong).most_common(12):
        print(f"{n:4d}  {label} -> {predicted}")
    rows = max(1, -(-len(wrong) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * CELL, rows * (CELL + 24)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (path, label, predicted) in enumerate(wrong):
        with Image.open(path) as img:
            thumb = img.convert("RGB")
        thumb.thumbnail((CELL, CELL))
        x, y = (k % COLUMNS) * CELL, (k // COLUMNS) * (CELL + 24)
        sheet.paste(thumb, (x, y))
        draw.text((x + 2, y + CELL + 4), f"{label} -> {predicted}", fill="black")
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
