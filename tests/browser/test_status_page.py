"""The operator's status page in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.stack import Stack

pytestmark = pytest.mark.browser


def test_status_page_shows_catalog_and_sources(page: Page, stack: Stack, tmp_path: Path) -> None:
    page.goto(f"{stack.url}/status-page")
    expect(page).to_have_title("Lookalike · status")
    expect(page.get_by_role("heading", name="Lookalike")).to_be_visible()
    # The source's name is also a cell of every Categories row once its products are in.
    sources = page.get_by_role("region", name="Sources")
    expect(sources.get_by_role("cell", name="demo-shop")).to_be_visible()
    expect(sources.get_by_role("link", name=stack.shop_url)).to_be_visible()
    expect(page.get_by_role("heading", name="Categories")).to_be_visible()
    page.screenshot(path=str(tmp_path / "status.png"), full_page=True)

    expect(page.get_by_role("link", name="OpenAPI docs")).to_have_attribute("href", "/docs")
    expect(page.get_by_role("link", name="Storefront")).to_have_attribute("href", "/")


@pytest.mark.parametrize("width", [390, 1280])
def test_status_page_fits_a_phone_and_a_desktop(page: Page, stack: Stack, width: int) -> None:
    """No sideways scrolling of the page (issue 27): wide tables scroll inside themselves."""
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(f"{stack.url}/status-page")
    expect(page.get_by_role("heading", name="Categories")).to_be_visible()
    expect(page.get_by_role("cell", name="bags")).to_be_visible(timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
