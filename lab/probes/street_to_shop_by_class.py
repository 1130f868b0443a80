"""Street crop -> shop P@10 per class, with the shop's own share of each class.

The street crops are the validation half ``lookalike train --val-fraction 0.5`` holds out (seed
0); the gallery is the whole shop relabelled in the street classes, as the model card's
``street_to_shop`` figure searches it. Printed per class: queries, shop images of the class,
chance (the class's share of the shop) and P@10 for each model. A class the shop holds 19
images of can be found, but an embedding must pick those 19 out of ~4,200::

    .venv/bin/python -m lab.probes.street_to_shop_by_class \
        --model services/embedder/artifacts/street-lite0 --model efficientnet_lite0
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from lab.embedder.data import load_labelled, mix, stratified_split
from lab.embedder.evaluation import cross_hits
from services.embedder.inference import Embedder

ALIASES = {"jeans": "pants", "shorts": "pants", "stockings": "leggings", "tights": "leggings"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="Repeatable.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/street-crops-dev"))
    parser.add_argument(
        "--shop", type=Path, default=Path("../shared/data/catalog-products-dev/labels.csv")
    )
    args = parser.parse_args()
    street = load_labelled(args.data)
    shop = mix(street, [], ALIASES, shop=load_labelled(args.shop)).shop
    assert shop is not None
    _, val = stratified_split(street, 0.5, 0)
    query_paths = [str(street.paths[i]) for i in val]
    query_labels = [street.labels[i] for i in val]
    gallery_labels = shop.gallery.labels
    in_shop = Counter(gallery_labels)
    figures = {}
    for model in args.model:
        embedder = Embedder(model)
        gallery = embedder.embed([str(p) for p in shop.gallery.paths])
        figures[model] = cross_hits(
            embedder.embed(query_paths), query_labels, gallery, gallery_labels
        )
    names = [Path(m).name for m in args.model]
    print(f"| class | street queries | shop images | chance | {' | '.join(names)} |")
    print(f"|---|---|---|---|{'---|' * len(names)}")
    labels = np.asarray(query_labels)
    for label in sorted(set(query_labels)):
        rows = labels == label
        cells = " | ".join(f"{figures[m][rows].mean():.3f}" for m in args.model)
        share = in_shop[label] / len(gallery_labels)
        print(f"| {label} | {rows.sum()} | {in_shop[label]} | {share:.3f} | {cells} |")
    cells = " | ".join(f"**{figures[m].mean():.3f}**" for m in args.model)
    print(f"| all | {len(labels)} | {len(gallery_labels)} | - | {cells} |")


if __name__ == "__main__":
    main()
