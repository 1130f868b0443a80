"""The API docs (``/docs`` and ``/redoc``) render offline: their scripts come from the gateway
itself, and any request to another host is refused here to prove it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.stack import Stack

pytestmark = pytest.mark.browser


def _offline(page: Page, stack: Stack) -> list[str]:
    """Abort every request that leaves the gateway; returns the URLs that tried."""
    own = urlsplit(stack.url).netloc
    elsewhere: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == own or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", route)
    return elsewhere


def test_swagger_ui_shows_the_operations_offline(page: Page, stack: Stack, tmp_path: Path) -> None:
    elsewhere = _offline(page, stack)
    page.goto(f"{stack.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Lookalike gateway")
    recommend = page.locator(".opblock-post", has_text="/recommend").first
    expect(recommend).to_be_visible()
    expect(page.locator(".opblock-get", has_text="/readyz").first).to_be_visible()
    recommend.locator(".opblock-summary").click()
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    assert elsewhere == []


def test_redoc_shows_the_operations_offline(page: Page, stack: Stack) -> None:
    elsewhere = _offline(page, stack)
    page.goto(f"{stack.url}/redoc")
    expect(page.get_by_role("heading", name="Lookalike gateway").first).to_be_visible()
    expect(page.get_by_text("/recommend").first).to_be_attached()
    # ReDoc's bundle links its "powered by" badge image from its vendor; the page needs nothing
    # else from outside.
    assert [url for url in elsewhere if not url.endswith("/logo-mini.svg")] == []
