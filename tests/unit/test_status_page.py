"""The operator's status page, rendered from catalog values: the Categories section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.routes.page import MAX_CATEGORY_ROWS, render_status_page
from shared.db import CatalogStats, CategoryGarment, ImageState, IngestProgress, SourceOut
from shared.health import Check

pytestmark = pytest.mark.unit


def page(categories: list[CategoryGarment], *, progress: IngestProgress | None = None) -> str:
    stats = CatalogStats(
        sources=1, products_active=3, products_inactive=0, images=dict.fromkeys(ImageState, 0)
    )
    source = SourceOut(
        id=1,
        name="acme",
        base_url="https://shop.example/",
        config={},
        enabled=True,
        created_at=datetime.now(UTC),
    )
    progress = progress or ingest(waiting=0)
    checks = [Check("models", True, "loaded", 1.0)]
    return render_status_page(stats, [source], progress, checks, categories=categories)


def ingest(
    *, waiting: int, waiting_since: datetime | None = None, last: datetime | None = None
) -> IngestProgress:
    images = dict.fromkeys(ImageState, 0) | {ImageState.PENDING: waiting}
    return IngestProgress(
        images=images,
        failure_reasons={},
        last_processed_at=last,
        waiting_since=waiting_since,
        indexed_last_minute=0,
    )


def row(category: str | None, products: int, **fields: object) -> CategoryGarment:
    values: dict[str, object] = {
        "source_id": 1,
        "source": "acme",
        "category": category,
        "garment": None,
        "parent": None,
        "how": "unknown",
        "votes": 0,
        "share": 0.0,
        "products": products,
        **fields,
    }
    return CategoryGarment.model_validate(values)


def test_the_categories_section_shows_each_categorys_garment_class() -> None:
    html = page(
        [
            row("Hosen", 40, garment="trousers", parent="bottom", how="votes", votes=9, share=0.8),
            row("Casual Shoes", 12, garment="footwear", parent="footwear", how="name"),
            row("<script>alert(1)</script>", 3, votes=1, share=1.0),
            row(None, 2, garment="dress", parent="dress", how="votes", votes=4, share=1.0),
        ]
    )
    section = html[html.index('<h2 id="categories">') :]
    assert (
        '<tr><td>acme</td><td>Hosen</td><td class="num">40</td><td>trousers</td>'
        '<td>bottom</td><td>votes</td><td class="num">9</td><td class="num">80%</td></tr>'
    ) in section
    assert "<td>Casual Shoes</td>" in section and "<td>name</td>" in section
    assert "<script>" not in html
    assert '<tr class="unknown"><td>acme</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>' in html
    assert "<td><em>none</em></td>" in section
    assert "Pin one with <code>garment_map</code>" in section
    assert section.index("Hosen") < section.index("Casual Shoes") < section.index("&lt;script")


def test_the_categories_section_is_capped_with_a_count_of_the_rest() -> None:
    many = [row(f"Kategorie {n}", n + 1) for n in range(MAX_CATEGORY_ROWS + 7)]
    html = page(many)
    assert html.count('<tr class="unknown">') == MAX_CATEGORY_ROWS
    assert "<td>Kategorie 56</td>" in html  # most products first
    assert "<td>Kategorie 0</td>" not in html
    assert "7 more (<code>lookalike sources show NAME</code>" in html


def test_an_empty_catalog_has_no_categories_yet() -> None:
    html = page([])
    assert '<h2 id="categories">Categories</h2>' in html
    assert "No active products yet." in html
    assert "Pin one with" not in html


def test_a_disabled_sources_categories_are_not_listed() -> None:
    html = page([row("Hosen", 40), row("Old stock", 9, source_id=2, source="gone")])
    assert "<td>Hosen</td>" in html
    assert "Old stock" not in html and "<td>gone</td>" not in html


def test_the_tables_scroll_inside_the_page_on_a_phone() -> None:
    html = page([row("Hosen", 40)])
    assert html.count('<div class="scroll"><table>') == 2  # sources and categories
    assert ".scroll{overflow-x:auto" in html


def test_stalled_only_when_an_image_waited_and_none_finished_meanwhile() -> None:
    now = datetime.now(UTC)
    quiet = now - timedelta(minutes=30)
    # New images after a quiet spell: they have not waited yet.
    assert not ingest(waiting=5, waiting_since=now - timedelta(seconds=20), last=quiet).stalled()
    # An image waited 6 minutes while others kept finishing: progress, no stall.
    early = now - timedelta(minutes=6)
    assert not ingest(waiting=5, waiting_since=early, last=now - timedelta(seconds=5)).stalled()
    # It waited 6 minutes and nothing finished for 30: stalled, and the page says so.
    assert ingest(waiting=5, waiting_since=early, last=quiet).stalled()
    assert ingest(waiting=5, waiting_since=early, last=None).stalled()
    stalled = page([], progress=ingest(waiting=5, waiting_since=early, last=quiet))
    assert "stalled: is a worker running?" in stalled
    arriving = page([], progress=ingest(waiting=5, waiting_since=now, last=quiet))
    assert "stalled" not in arriving
