"""The eval-e2e report as Markdown, merged into ``BENCHMARKS.md`` under its own heading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.benchmarks import replace_section

__all__ = ["HEADING", "render_markdown", "write_markdown"]

HEADING = "## End to end: photos to products (issue #17)"
START, END = "<!-- eval-e2e:start -->", "<!-- eval-e2e:end -->"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_markdown(report: dict[str, Any]) -> str:
    """The generated section: what ran, where, and the figures."""
    m, c, ingest = report["machine"], report["config"], report["ingest"]
    street, products = report["street"], report["products"]
    lines = [
        START,
        f"Generated {report['generated_at']} by `{report['command']}` on {m['cores']} cores "
        f"({m['cpu']}, Python {m['python']}) in {report['seconds']:.0f} s. Model "
        f"`{c['model_version']}`, classifier `{c['classifier']}`, detector {c['detector']}; "
        f"catalog: {ingest['products']} products indexed ({ingest['images_done']} images, "
        f"{ingest['points']} points, detect={ingest['detect']}, {ingest['images_per_s']} "
        f"images/s), {products['queries']} held back (holdout {c['holdout']}, seed {c['seed']}).",
        "",
        f"**Street photos** ({street['photos']}): a box is found when a group's box has IoU >= "
        f"{c['min_iou']} with it; right class: the group's predicted class has the box's parent; "
        f"garment hit@{c['k']}: found and >= {c['hit_min_same']} of the group's top {c['k']} "
        "products of the box's parent class (by `shared.taxonomy`).",
        "",
        "| class | boxes | found | right class (of found) | searched right (of found) "
        f"| garment hit@{c['k']} | duplicate groups | said no close match (of found) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in street["per_class"].items():
        label = f"**{name}**" if name == "overall" else name
        lines.append(
            f"| {label} | {row['boxes']} | {_pct(row['found_rate'])} | "
            f"{_pct(row['class_right_rate'])} | {_pct(row['searched_right_rate'])} | "
            f"{_pct(row['hit10_rate'])} | {row['duplicate_groups']} | "
            f"{_pct(row.get('flagged_rate'))} |"
        )
    lines += [
        "",
        f"Main garment first: {_pct(street.get('main_first_rate'))} of the "
        f"{street.get('main_found')} photos whose largest box is found (its group is the "
        "answer's first; a group around two shoe boxes finds both).",
        "",
        f"Per photo: {street['groups_per_photo']} groups, {street['spurious_per_photo']} "
        f"spurious (matching no box; {_pct(street.get('spurious_flagged_rate'))} of them said "
        f"no close match), {street['duplicates_per_photo']} duplicates; latency "
        f"p50 {street.get('p50_ms')} ms, p95 {street.get('p95_ms')} ms "
        f"(stages p50: {street.get('stages_p50_ms')}). `overall` is the six target classes; "
        "`other` is eyewear, hats, legwear, accessories, jewellery and innerwear.",
        *_fine_classes(street.get("per_fine_class") or {}, c),
        "",
        f"**Product photos** ({products['queries']} held-back catalog photos, the largest "
        f"group's top {c['k']}; the product itself is not in the index):",
        "",
        f"| class | queries | P@{c['k']} same articleType | same class | same parent "
        "| same type + colour | same type + colour name | same colour name |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {**products["per_class"], "overall": products}
    for name, row in rows.items():
        label = f"**{name}**" if name == "overall" else name
        lines.append(
            f"| {label} | {row['queries']} | {_pct(row['same_type'])} | "
            f"{_pct(row['same_class'])} | {_pct(row['same_parent'])} | "
            f"{_pct(row['same_type_colour'])} | {_pct(row.get('same_type_colour_name'))} | "
            f"{_pct(row.get('same_colour_name'))} |"
        )
    lines += [
        "",
        "Same type + colour: the product's `baseColour` label is the query's, exactly; colour "
        "name: the two labels read as the same shopper colour (`shared.colour.label_colour`: "
        '"Off White" is a white, "Navy Blue" a navy, not a blue), counted over the queries '
        "whose label names one colour (not `Multi`).",
        "",
        f"Latency p50 {products.get('p50_ms')} ms, p95 {products.get('p95_ms')} ms; "
        f"{products.get('flagged', 0)} said no close match; the product's own class first: "
        f"{_pct(products.get('own_first_rate'))}.",
        *_colours(products, c["k"]),
        *_types(products, c["k"]),
        "",
        _street_colour(street),
    ]
    lines += _variants(report, c["k"])
    lines.append(END)
    return "\n".join(lines)


def _colours(products: dict[str, Any], k: int) -> list[str]:
    """Product photos per shopper colour of the query's label, and how often the answer's
    named colour of the query garment is that colour (when the answers name one)."""
    rows = products.get("per_colour") or {}
    if not rows:
        return []
    said = products.get("said_colour", 0) > 0
    lines = [
        "",
        f"**Per colour** (the query's `baseColour` as a shopper colour name; P@{k}"
        + (
            "; named right: the answer's named colour of the query garment is the label's"
            if said
            else ""
        )
        + "):",
        "",
        f"| query colour | queries | P@{k} same articleType | same type + colour "
        "| same type + colour name | same colour name |" + (" named right |" if said else ""),
        "|---|---|---|---|---|---|" + ("---|" if said else ""),
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['queries']} | {_pct(row['same_type'])} | "
            f"{_pct(row['same_type_colour'])} | {_pct(row['same_type_colour_name'])} | "
            f"{_pct(row['same_colour_name'])} |"
            + (f" {_pct(row['said_colour_right_rate'])} |" if said else "")
        )
    if said:
        lines += [
            "",
            f"The answer named the query garment's colour as its label names it for "
            f"{_pct(products['said_colour_right_rate'])} of the {products['said_colour']} "
            "queries whose label and answer both name one colour.",
        ]
    return lines


def _types(products: dict[str, Any], k: int) -> list[str]:
    """Product photos per article type (the types with enough queries)."""
    rows = products.get("per_type") or {}
    least = products.get("per_type_min_queries")
    if not rows:
        return []
    lines = [
        "",
        f"**Per article type** (the types with at least {least} queries; queries of the "
        f"other types: {products.get('other_type_queries', 0)}):",
        "",
        f"| articleType | queries | P@{k} same articleType | same class | same type + colour "
        "| same type + colour name | same colour name |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['queries']} | {_pct(row['same_type'])} | "
            f"{_pct(row['same_class'])} | {_pct(row['same_type_colour'])} | "
            f"{_pct(row['same_type_colour_name'])} | {_pct(row['same_colour_name'])} |"
        )
    return lines


def _street_colour(street: dict[str, Any]) -> str:
    """One line on colour for the street boxes: their data labels none (the dev boxes)."""
    column = street.get("colour_column")
    if column is None:
        return (
            "Street boxes: no colour figures; `boxes.csv` labels a box's class, not its colour "
            "(nor do the dev street crops, filed by class)."
        )
    return f"Street boxes: `boxes.csv` has a colour column (`{column}`) that is not scored yet."


def _fine_classes(rows: dict[str, Any], c: dict[str, Any]) -> list[str]:
    """The boxes labelled finer than their parent: products of that very class in the top k."""
    if not rows:
        return []
    lines = [
        "",
        f"**At the class level** (boxes labelled finer than their parent class; class P@{c['k']}: "
        f"share of a found box's top {c['k']} of its very class, so skirts answered for jeans "
        f"count against it; class hit@{c['k']}: >= {c['hit_min_same']} of them):",
        "",
        f"| class | shop products | boxes | found | class P@{c['k']} | class hit@{c['k']} "
        f"| garment hit@{c['k']} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        overall = row.get("shop_products") is None
        label = f"**{name}**" if overall else name
        lines.append(
            f"| {label} | {'' if overall else row['shop_products']} | {row['boxes']} | "
            f"{row['found']} | {_pct(row['class_p10'])} | {_pct(row['class_hit10_rate'])} | "
            f"{_pct(row['hit10_rate'])} |"
        )
    lines += [
        "",
        f"`overall, stocked`: the classes of which the shop has at least {c['k']} products (a "
        f"full top {c['k']} is possible).",
    ]
    return lines


def _variants(report: dict[str, Any], k: int) -> list[str]:
    """The variants scored on the same indexed catalog, next to the defaults."""
    variants = report.get("variants") or {}
    if not variants:
        return []
    classes = [name for name in report["street"]["per_class"] if name not in ("overall", "other")]
    lines = [
        "",
        "**Variants** (query-time settings on the same indexed catalog; street garment "
        f"hit@{k} per class, then product photos' P@{k}):",
        "",
        f"| variant | street hit@{k} | {' | '.join(classes)} | found | spurious / photo "
        f"| class P@{k} (stocked) | product same type | same type + colour name | same parent "
        "| main first | own first | groups / photo |",
        "|---|" + "---|" * (len(classes) + 10),
    ]
    rows = {"defaults": {"settings": {}, **report}, **variants}
    for name, row in rows.items():
        street, products = row["street"], row["products"]
        per_class = street["per_class"]
        cells = [_pct(per_class[c]["hit10_rate"]) for c in classes]
        overall = per_class["overall"]
        fine = (street.get("per_fine_class") or {}).get("overall, stocked", {})
        setting = f" `{json.dumps(row['settings'])}`" if row["settings"] else ""
        lines.append(
            f"| {name}{setting} | {_pct(overall['hit10_rate'])} | {' | '.join(cells)} | "
            f"{_pct(overall['found_rate'])} | {street['spurious_per_photo']} | "
            f"{_pct(fine.get('class_p10'))} | "
            f"{_pct(products['same_type'])} | {_pct(products.get('same_type_colour_name'))} | "
            f"{_pct(products['same_parent'])} | "
            f"{_pct(street.get('main_first_rate'))} | {_pct(products.get('own_first_rate'))} | "
            f"{street['groups_per_photo']} |"
        )
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """Replace the generated section of ``path`` (appended under :data:`HEADING` the first
    time; a missing file is created)."""
    text = path.read_text() if path.is_file() else ""
    path.write_text(replace_section(text, START, END, render_markdown(report), heading=HEADING))
