"""The storefront page as a shopper uses it, against a real ``lookalike run`` stack.

The demo shop is crawled and indexed first; then, in headless Debian Chromium: upload a street
photo, see its garments boxed, pick one, see similar products in shopper's words (no raw
percentages; the numbers behind a closed "Details" toggle), refine, "more like this", a friendly
message for a file that is not a photo, the example photos, a phone's view, and colour: the
colour seen, same / any / another colour, one colour only; "based on what you viewed" from the
browser's own history, "not for me" and "clear history"; "also at" other shops. Screenshots go
to ``LOOKALIKE_ARTIFACTS_DIR`` (default: the test's tmp dir); the path is printed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, FloatRect, Page, expect

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.images import compose_outfit
from services.demo_shop.vocabulary import CATEGORIES
from shared.colour import SHOPPER_COLOURS
from shared.taxonomy import parent
from tests.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

INGEST_TIMEOUT_S = 420
QUERY_TIMEOUT_MS = 90_000
"""The first query loads the models; later ones take well under a second."""
RECOMMEND = re.compile(r"/recommend(\?|$)")


@pytest.fixture(scope="module")
def indexed(stack: Stack) -> Stack:
    """The stack once the demo shop is crawled and every image is ingested."""
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    previous: dict[str, Any] | None = None
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{stack.url}/status", timeout=10).json()
        images = body["images"]
        settled = (
            body["products_active"] > 0
            and images.get("done", 0) > 0
            and images.get("pending", 0) == 0
            and images.get("processing", 0) == 0
        )
        if settled and body == previous:  # the same counts twice in a row: the crawl is over
            return stack
        previous = body
        time.sleep(2)
    lines = stack.log.read_text(errors="replace").splitlines()
    log_tail = "\n".join([line for line in lines if ".access:" not in line][-40:])
    pytest.fail(
        f"the demo shop was not ingested in {INGEST_TIMEOUT_S} s: {body}\n"
        f"last lines of {stack.log}:\n{log_tail}"
    )


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    root = os.environ.get("LOOKALIKE_ARTIFACTS_DIR")
    directory = Path(root) / request.node.name if root else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    print(f"\nscreenshots of {request.node.name}: {directory}")


@pytest.fixture
def outfit_photo(tmp_path: Path) -> Path:
    """A street photo of a top over trousers from the shop's own catalog.

    Demo products are a pure function of (seed, index), so the stack's shop (seed 0) has the
    same first products as this catalog.
    """
    demo = DemoCatalog.generate(16, seed=0)
    top, bottom = demo.in_category("tops")[0], demo.in_category("pants")[0]
    path = tmp_path / "street-photo.jpg"
    path.write_bytes(compose_outfit(top, bottom, (480, 640), seed=3).jpeg)
    return path


def _inside(inner: FloatRect | None, outer: FloatRect | None) -> bool:
    if inner is None or outer is None:
        return False
    return (
        outer["x"] - 1
        <= inner["x"]
        <= inner["x"] + inner["width"]
        <= outer["x"] + outer["width"] + 1
        and outer["y"] - 1
        <= inner["y"]
        <= inner["y"] + inner["height"]
        <= outer["y"] + outer["height"] + 1
    )


PLAIN = {
    "top": "Top",
    "t-shirt": "T-shirt",
    "shirt": "Shirt",
    "sweater": "Sweater",
    "outerwear": "Coat or jacket",
    "coat": "Coat",
    "jacket": "Jacket",
    "dress": "Dress",
    "bottom": "Bottoms",
    "skirt": "Skirt",
    "trousers": "Trousers",
    "jeans": "Jeans",
    "shorts": "Shorts",
    "leggings": "Leggings",
    "footwear": "Shoes",
    "boots": "Boots",
    "sandals": "Sandals",
    "bag": "Bag",
    "hat": "Hat",
}
"""The garment classes (``shared.taxonomy``) as the page names them."""

PERCENT = re.compile(r"\d\s*%")


def _no_percentages(page: Page) -> None:
    """No probability or similarity percentage outside the details (the colour slider's
    "20% colour" is a setting, not a score)."""
    for selector in ("#boxes", "#chips", ".results-head", "#group-notice", "#grid"):
        for text in page.locator(selector).all_inner_texts():
            assert not PERCENT.search(text), f"{selector}: {text!r}"
    for label in page.locator("#boxes .box").evaluate_all("els => els.map(e => e.ariaLabel)"):
        assert not PERCENT.search(label or ""), label


def _wait_for_answer(page: Page) -> None:
    """Wait until the query in flight is answered and shown (call once it was sent)."""
    busy = re.compile(r"\bis-loading\b")
    expect(page.locator("body")).not_to_have_class(busy, timeout=QUERY_TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("Showing")


def test_shopper_finds_similar_products_for_a_garment_in_a_photo(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(indexed.url)
    expect(page).to_have_title("Lookalike · shop the look")
    expect(page.get_by_role("heading", name="Shop the look")).to_be_visible()
    # The filters offer the catalog's own categories (and "as detected").
    expect(page.get_by_label("Category").locator("option")).to_have_count(1 + len(CATEGORIES))
    expect(page.get_by_text("Price (EUR)")).to_be_visible()

    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    assert answer.value.status == 200, answer.value.text()
    groups = answer.value.json()["groups"]
    assert groups

    # Every garment is boxed on the photo and listed as a chip.
    boxes = page.locator("#boxes .box")
    expect(boxes).to_have_count(len(groups), timeout=QUERY_TIMEOUT_MS)
    expect(page.locator("#chips .chip")).to_have_count(len(groups))
    _wait_for_answer(page)
    photo = page.locator("#photo-img").bounding_box()
    for index in range(len(groups)):
        assert _inside(boxes.nth(index).bounding_box(), photo), f"box {index} is off the photo"
    page.screenshot(path=str(artifacts / "01-garments-boxed.png"), full_page=True)

    # Pick the last garment with the keyboard: its box is a button.
    last = boxes.nth(len(groups) - 1)
    last.focus()
    page.keyboard.press("Enter")
    expect(last).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#chips .chip").nth(len(groups) - 1)).to_have_attribute(
        "aria-pressed", "true"
    )
    shown = groups[-1]["recommendations"]
    assert shown, groups[-1]
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(len(shown))
    searched = groups[-1]["searched"]
    assert {parent(p["category"]) for p in shown} <= set(searched) or not searched
    # The heading names the garment in plain words; the probability and the categories
    # searched are in the details, folded away.
    # The heading names the garment in plain words and the colour seen ("Trousers navy").
    heading = page.locator("#results-title")
    seen = groups[-1]["colour"]["name"]
    expect(heading).to_have_text(f"{PLAIN[groups[-1]['category']]} {seen}")
    details = page.locator("#details")
    expect(details).to_be_visible()
    expect(details).not_to_have_attribute("open", re.compile(".*"))
    expect(page.locator("#timings")).to_be_hidden()
    _no_percentages(page)

    # A product card: picture with alt text, title linking to the shop, price, score.
    first = cards.first
    title = first.get_by_role("heading").inner_text()
    expect(first.get_by_role("img", name=title)).to_be_visible()
    expect(first.get_by_role("link", name=title)).to_have_attribute(
        "href", re.compile(re.escape(indexed.shop_url) + "/product/")
    )
    expect(first.locator(".card-price")).to_have_text(re.compile(r"\d"))
    expect(page.locator(".card-score")).to_have_count(0)  # no raw similarity badges
    page.get_by_text("Details", exact=True).click()
    expect(details).to_have_attribute("open", "")
    expect(page.locator("#timings")).to_be_visible()
    expect(page.locator("#timings")).to_contain_text("total")
    expect(page.locator("#timings")).to_contain_text("model ")
    garment_line = page.locator("#details-list li").nth(len(groups) - 1)
    expect(garment_line).to_contain_text(f"{round(groups[-1]['probability'] * 100)}% sure")
    for name in searched[:3] or ["every category"]:
        expect(garment_line).to_contain_text(name)
    page.screenshot(path=str(artifacts / "02-similar-products.png"), full_page=True)

    # Filters re-query: L1 distance and a colour weight go to the API.
    with page.expect_request(re.compile(r"/recommend\?.*metric=l1")):
        page.get_by_text("L1", exact=True).click()
    _wait_for_answer(page)
    slider = page.get_by_label("Colour vs. shape")
    slider.focus()
    with page.expect_request(re.compile(r"/recommend\?.*color_weight=0\.5")):
        slider.fill("0.5")
    _wait_for_answer(page)
    expect(page.locator("#color-weight-value")).to_have_text("50% colour")
    with page.expect_request(re.compile(r"/recommend\?.*cross_category=true")):
        page.get_by_label("Search all categories").check()
    _wait_for_answer(page)
    expect(page.locator("#grid .card").first).to_be_visible()

    # "More like this" searches with the product itself.
    product = page.locator("#grid .card").first
    name = product.get_by_role("heading").inner_text()
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as more:
        product.get_by_role("button", name=f"More like this: {name}").click()
    assert more.value.status == 200, more.value.text()
    assert "product_id" in (more.value.request.post_data or "")
    _wait_for_answer(page)
    expect(page.locator("#photo-caption")).to_have_text(f"More like: {name}")
    expect(page.locator("#grid .card").first).to_be_visible()
    page.screenshot(path=str(artifacts / "03-more-like-this.png"), full_page=True)
    assert not errors


def test_a_file_that_is_not_a_photo_gets_a_friendly_message(
    page: Page, indexed: Stack, tmp_path: Path, artifacts: Path
) -> None:
    notes = tmp_path / "shopping-list.txt"
    notes.write_text("socks, a scarf, the red coat\n")
    page.goto(indexed.url)
    with page.expect_response(RECOMMEND) as answer:
        page.get_by_label("Choose a photo").set_input_files(notes)
    assert answer.value.status == 415
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("That file doesn't look like a photo.")
    expect(alert).to_contain_text("JPEG, PNG or WebP")
    expect(page.locator("#photo")).to_be_hidden()
    expect(page.locator("#grid .card")).to_have_count(0)
    page.screenshot(path=str(artifacts / "04-not-a-photo.png"), full_page=True)


def test_pages_are_local_and_the_status_page_moved(indexed: Stack) -> None:
    page = httpx.get(indexed.url, timeout=10)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert httpx.get(indexed.url + asset, timeout=10).status_code == 200, asset
    # Nothing from another origin: the machine may be offline, and the policy forbids it.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)
    for module in ("storefront.js", "api.js", "render.js"):
        code = httpx.get(f"{indexed.url}/static/{module}", timeout=10).text
        assert not re.search(r'^import[^;]*from "(?!\./)', code, re.MULTILINE), module
    status = httpx.get(f"{indexed.url}/status-page", timeout=10)
    assert status.status_code == 200 and "demo-shop" in status.text
    config = httpx.get(f"{indexed.url}/storefront/config.json", timeout=10).json()
    assert sorted(config["categories"]) == sorted(CATEGORIES)
    assert config["brands"] == sorted(config["brands"]) and config["currency"] == "EUR"
    assert 0 < config["min_price"] < config["max_price"]
    assert config["max_upload_bytes"] > 0 and config["feedback"] is True
    assert config["color_weight"] == pytest.approx(0.45)
    assert config["colours"] == list(SHOPPER_COLOURS)


def test_a_refused_link_clears_the_previous_results(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    page.goto(indexed.url)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS):
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)
    expect(page.locator("#grid .card").first).to_be_visible()

    dead = "http://127.0.0.1:9/outfit.jpg"  # nothing listens on the discard port
    page.get_by_label("Or use a picture from the web").fill(dead)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_role("button", name="Search", exact=True).click()
    assert answer.value.status == 422, answer.value.text()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.locator("#boxes .box")).to_have_count(0)
    expect(page.locator("#garments")).to_be_hidden()
    expect(page.locator("#photo")).to_be_hidden()
    page.screenshot(path=str(artifacts / "05-refused-link.png"), full_page=True)


def test_while_the_catalog_is_indexed_the_page_says_so(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    """The shop's real config, as it reads while ingest is still running."""
    real = httpx.get(f"{indexed.url}/storefront/config.json", timeout=10).json()
    total = real["catalog"]["images_total"]
    assert real["catalog"]["indexing"] is False and real["catalog"]["images_indexed"] == total
    midway = {**real, "catalog": {**real["catalog"], "images_indexed": 40, "indexing": True}}
    page.route("**/storefront/config.json", lambda route: route.fulfill(json=midway))
    page.goto(indexed.url)
    notice = page.locator("#indexing")
    expect(notice).to_have_text(
        f"Indexing the catalog: 40 of {total} pictures ready. Searches cover what is ready."
    )
    page.screenshot(path=str(artifacts / "06-indexing.png"), full_page=False)
    page.unroute("**/storefront/config.json")
    expect(notice).to_be_hidden(timeout=15_000)  # the page follows the real progress


def test_a_photo_with_no_clothing_says_so(
    page: Page, indexed: Stack, outfit_photo: Path, tmp_path: Path, artifacts: Path
) -> None:
    wall = tmp_path / "blue-wall.jpg"
    Image.new("RGB", (640, 480), (40, 90, 200)).save(wall, "JPEG")
    page.goto(indexed.url)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS):
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)  # a previous search's heading and products are on screen
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_label("Choose a photo").set_input_files(wall)
    assert answer.value.status == 200 and answer.value.json()["groups"] == []
    expect(page.locator("#empty")).to_contain_text("We couldn't find any clothing")
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.locator("#boxes .box")).to_have_count(0)
    expect(page.locator("#results-title")).to_have_text("Similar products")
    page.screenshot(path=str(artifacts / "07-no-clothing.png"), full_page=False)


def test_match_words_and_garment_notices_instead_of_percentages(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    """The API's calibrated ``match`` label and per-garment ``notice``, as the page shows them
    (the real answer, with those fields set as the contract describes them)."""

    real = httpx.post(
        f"{indexed.url}/recommend",
        files={"image": ("street-photo.jpg", outfit_photo.read_bytes(), "image/jpeg")},
        timeout=QUERY_TIMEOUT_MS / 1000,
    )
    assert real.status_code == 200, real.text
    body = real.json()
    assert len(body["groups"]) >= 2 and len(body["groups"][0]["recommendations"]) >= 3, body
    for group in body["groups"]:
        for index, product in enumerate(group["recommendations"]):
            product["match"] = ["very close", "close", "loose"][index] if index < 3 else None
        group["notice"] = None
    body["groups"][0]["notice"] = "No close match in this shop"
    page.route(RECOMMEND, lambda route: route.fulfill(json=body))
    page.goto(indexed.url)
    page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)
    cards = page.locator("#grid .card")
    expect(cards.nth(0).locator(".card-match")).to_have_text("Very close")
    expect(cards.nth(1).locator(".card-match")).to_have_text("Close")
    expect(cards.nth(2).locator(".card-match")).to_have_count(0)  # loose: no word at all
    expect(page.locator("#grid .card-match")).to_have_count(2)
    notice = page.locator("#group-notice")
    expect(notice).to_have_text("No close match in this shop")
    heading_box = page.locator("#results-title").bounding_box()
    notice_box = notice.bounding_box()
    assert heading_box and notice_box and notice_box["y"] >= heading_box["y"]
    _no_percentages(page)
    page.screenshot(path=str(artifacts / "08-match-words.png"), full_page=True)
    # The notice belongs to its garment: the next one has none.
    page.locator("#chips .chip").nth(1).click()
    expect(notice).to_be_hidden()


def test_on_a_phone_the_results_come_into_view_after_a_search(
    mobile_page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    page = mobile_page
    page.goto(indexed.url)
    expect(page.get_by_role("heading", name="Shop the look")).to_be_in_viewport()
    assert page.evaluate("window.scrollY") == 0
    page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)
    first = page.locator("#grid .card").first
    expect(first).to_be_in_viewport(timeout=5_000)
    expect(page.locator("#results-title")).to_be_in_viewport()
    expect(page.locator("#chips .chip").first).to_be_in_viewport()  # the garments stay at hand
    assert page.evaluate("window.scrollY") > 0
    page.screenshot(path=str(artifacts / "09-phone-results.png"), full_page=False)
    page.screenshot(path=str(artifacts / "09-phone-full.png"), full_page=True)


def test_a_visitor_without_a_photo_can_try_an_example(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    page.goto(indexed.url)
    examples = page.get_by_role("button", name=re.compile(r"^Try this photo: Street photo"))
    expect(examples.first).to_be_visible()
    assert 2 <= examples.count() <= 4
    for index in range(examples.count()):  # the thumbnails load from the gateway
        width = examples.nth(index).locator("img").evaluate("img => img.naturalWidth")
        assert width > 0
    page.screenshot(path=str(artifacts / "10-examples.png"), full_page=False)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        examples.nth(1).click()
    # The example went the shopper's way: its bytes uploaded as a multipart photo.
    assert answer.value.status == 200, answer.value.text()
    assert "multipart/form-data" in answer.value.request.headers["content-type"]
    busy = re.compile(r"\bis-loading\b")
    expect(page.locator("body")).not_to_have_class(busy, timeout=QUERY_TIMEOUT_MS)
    if answer.value.json()["groups"]:
        expect(page.locator("#grid .card").first).to_be_visible()
    else:
        expect(page.locator("#empty")).to_contain_text("We couldn't find any clothing")
    expect(page.locator("#photo-caption")).to_contain_text("Example photo 2: Street photo")
    expect(page.locator("#examples")).to_be_hidden()  # a photo is on screen now
    page.screenshot(path=str(artifacts / "11-example-searched.png"), full_page=True)
    page.get_by_role("button", name="Start over").click()
    expect(examples.first).to_be_visible()


# ------------------------------------------------------------------------------ words


def _sent_text(request: Any) -> str | None:
    """The ``text`` a JSON ``/recommend`` request carried, if any. (Chromium does not hand a
    multipart body with a file to Playwright: those are checked by the answer's
    ``answered_by`` and ``intent``.)"""
    assert request.headers.get("content-type") == "application/json", request.headers
    text = json.loads(request.post_data or "{}").get("text")
    return text if isinstance(text, str) else None


def _answered_by(response: Any) -> set[str]:
    return {group["answered_by"] for group in response.json()["groups"]}


def test_words_alone_find_products_and_say_what_was_understood(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(indexed.url)
    box = page.get_by_label("Search by words")
    box.fill("navy tee")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        box.press("Enter")
    assert answer.value.status == 200, answer.value.text()
    assert _sent_text(answer.value.request) == "navy tee"
    assert "image_url" not in (answer.value.request.post_data or "")
    [group] = answer.value.json()["groups"]
    assert group["answered_by"] in ("text", "both")
    assert group["intent"] == {"garment": "t-shirt", "garment_parent": "top", "colour": "blue"}
    assert group["recommendations"]
    _wait_for_answer(page)
    expect(page.locator("#results-title")).to_have_text("Results for “navy tee”")
    expect(page.locator("#understood")).to_have_text(
        re.compile(r"^\s*Understood:\s+blue · t-shirt\s*$")
    )
    expect(page.locator("#status")).to_contain_text("Understood: blue · t-shirt")
    expect(page.locator("#grid .card")).to_have_count(len(group["recommendations"]))
    expect(page.locator("#photo")).to_be_hidden()
    expect(page.locator("#garments")).to_be_hidden()  # one group and no photo: no chips
    _no_percentages(page)
    page.get_by_text("Details", exact=True).click()
    details = page.locator("#details-list")
    expect(details).to_contain_text("answered by the products' titles and attributes")
    expect(details).to_contain_text("words read as colour blue, garment t-shirt (top)")
    page.screenshot(path=str(artifacts / "12-words.png"), full_page=True)

    # The filters search the same words again.
    with page.expect_request(re.compile(r"/recommend\?.*metric=l1")) as again:
        page.get_by_text("L1", exact=True).click()
    assert _sent_text(again.value) == "navy tee"
    _wait_for_answer(page)

    # Words that name no garment and no colour (a brand) still search; nothing "understood".
    box.fill("koru")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as brand:
        page.get_by_role("button", name="Find").click()
    assert brand.value.json()["groups"][0]["intent"] == {
        "garment": None,
        "garment_parent": None,
        "colour": None,
    }
    _wait_for_answer(page)
    expect(page.locator("#understood")).to_be_hidden()
    expect(page.locator("#grid .card").first).to_be_visible()

    # Clearing the words puts the search away.
    page.get_by_role("button", name="Clear the words").click()
    expect(box).to_have_value("")
    expect(box).to_be_focused()
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.get_by_role("button", name="Clear the words")).to_be_hidden()
    assert not errors


def test_a_photo_refined_by_words_sends_them_and_keeps_them_across_garments(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    page.goto(indexed.url)
    page.get_by_label("Search by words").fill("navy tee")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    assert answer.value.status == 200, answer.value.text()
    assert "multipart/form-data" in answer.value.request.headers["content-type"]
    groups = answer.value.json()["groups"]
    # The words went with the photo: every garment's matches were refined by them.
    assert len(groups) >= 2 and _answered_by(answer.value) == {"both"}
    assert groups[0]["intent"] == {"garment": "t-shirt", "garment_parent": "top", "colour": "blue"}
    _wait_for_answer(page)
    understood = page.locator("#understood")
    expect(understood).to_have_text(re.compile(r"Refined by your words:\s+blue · t-shirt"))
    expect(page.locator("#status")).to_contain_text("Refined by your words: blue · t-shirt")
    page.get_by_text("Details", exact=True).click()
    expect(page.locator("#details-list li").first).to_contain_text(
        "answered by the pictures, refined by the words"
    )
    page.screenshot(path=str(artifacts / "13-photo-and-words.png"), full_page=True)

    # Another garment of the same answer: still refined by the words.
    page.locator("#chips .chip").nth(1).click()
    expect(page.locator("#chips .chip").nth(1)).to_have_attribute("aria-pressed", "true")
    expect(understood).to_have_text(re.compile(r"Refined by your words:\s+blue · t-shirt"))
    expect(page.get_by_label("Search by words")).to_have_value("navy tee")
    # A filter asks again with the photo and the words.
    with page.expect_response(re.compile(r"/recommend\?.*metric=l1")) as again:
        page.get_by_text("L1", exact=True).click()
    assert _answered_by(again.value) == {"both"}
    _wait_for_answer(page)
    expect(page.locator("#chips .chip").nth(1)).to_have_attribute("aria-pressed", "true")

    # Without the words: the photo's own matches.
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as plain:
        page.get_by_role("button", name="Clear the words").click()
    assert _answered_by(plain.value) == {"pictures"}
    _wait_for_answer(page)
    expect(understood).to_be_hidden()
    expect(page.locator("#photo")).to_be_visible()

    # Words typed with the photo on screen refine it ("Enter" in the box).
    box = page.get_by_label("Search by words")
    box.fill("red")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as refined:
        box.press("Enter")
    assert _answered_by(refined.value) == {"both"}
    assert refined.value.json()["groups"][0]["intent"]["colour"] == "red"
    _wait_for_answer(page)
    expect(understood).to_have_text(re.compile(r"Refined by your words:\s+red\s*$"))

    # "More like this" takes the words along too (a JSON request: the body can be read).
    product = page.locator("#grid .card").first
    name = product.get_by_role("heading").inner_text()
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as more:
        product.get_by_role("button", name=f"More like this: {name}").click()
    assert _sent_text(more.value.request) == "red"
    assert "product_id" in (more.value.request.post_data or "")
    assert _answered_by(more.value) == {"both"}
    _wait_for_answer(page)


def test_an_empty_or_unreadable_search_says_what_to_type(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    sent: list[str] = []
    page.on(
        "request", lambda request: sent.append(request.url) if "/recommend" in request.url else None
    )
    page.goto(indexed.url)
    box = page.get_by_label("Search by words")
    alert = page.get_by_role("alert")
    for words in ("", "   "):
        box.fill(words)
        box.press("Enter")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("Type what you are looking for.")
        expect(alert).to_contain_text("navy tee")
    assert not sent  # nothing to ask the server
    page.screenshot(path=str(artifacts / "14-empty-words.png"), full_page=False)

    # Words the server refuses: its 422 message in the error area, in a shopper's words.
    box.fill("🙂🙂")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        box.press("Enter")
    assert answer.value.status == 422
    expect(alert).to_contain_text("We couldn't search for those words.")
    expect(alert).to_contain_text("Text holds no words (no letter or digit).")
    for raw in ("Traceback", "Value error", "text: "):
        expect(alert).not_to_contain_text(raw)
    expect(box).to_have_value("🙂🙂")  # left to be corrected
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.locator("#understood")).to_be_hidden()


def test_the_search_box_fits_a_phone(mobile_page: Page, indexed: Stack, artifacts: Path) -> None:
    page = mobile_page
    page.goto(indexed.url)
    box = page.get_by_label("Search by words")
    find = page.get_by_role("button", name="Find")
    expect(box).to_be_in_viewport()
    for control in (box, find):
        bounds = control.bounding_box()
        assert bounds and bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= 390, bounds
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # A long unbroken word must wrap in the heading, not widen the page.
    words = "navy" + "x" * 120
    box.fill(words)
    box.press("Enter")
    _wait_for_answer(page)
    expect(page.locator("#results-title")).to_contain_text(words)
    expect(page.locator("#grid .card").first).to_be_in_viewport(timeout=5_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(artifacts / "15-phone-words.png"), full_page=True)


def test_a_page_started_for_one_shop_says_so_and_searches_it_only(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    """``/?shop=NAME`` (issue 31): the page names its shop, its config and every search are
    scoped to it; an unknown shop is said at once, in the page's error area."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with page.expect_response(re.compile(r"/storefront/config\.json")) as config:
        page.goto(f"{indexed.url}/?shop=demo-shop")
    assert config.value.url.endswith("/storefront/config.json?shop=demo-shop")
    assert config.value.json()["shop"] == ["demo-shop"]
    scope = page.locator("#shop-scope")
    expect(scope).to_have_text("Showing products of demo-shop only · all shops")
    expect(scope.get_by_role("link", name="all shops")).to_have_attribute("href", "/")
    box = page.get_by_label("Search by words")
    box.fill("navy tee")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        box.press("Enter")
    assert "shop=demo-shop" in answer.value.url
    assert answer.value.status == 200 and answer.value.json()["groups"][0]["recommendations"]
    _wait_for_answer(page)
    page.screenshot(path=str(artifacts / "16-one-shop.png"), full_page=False)

    page.goto(f"{indexed.url}/?shop=nowhere")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("No shop named 'nowhere'; the shops are: demo-shop.")
    expect(page.locator("#shop-scope")).to_contain_text("nowhere")

    page.goto(indexed.url)  # every shop: no scope said or sent
    expect(page.locator("#shop-scope")).to_be_hidden()
    assert not errors


# ------------------------------------------------------------------------------ colour


def _products(response: Any) -> list[dict[str, Any]]:
    """The first group's products of a ``/recommend`` answer."""
    assert response.status == 200, response.text()
    return response.json()["groups"][0]["recommendations"]


def _choose_colour_mode(page: Page, mode: str) -> None:
    """Click the colour toggle's segment, as a shopper does (the radio itself is hidden)."""
    page.locator(f"label[for=f-colour-{mode}]").click()


def _card_colours(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("#grid .card .card-colour").all_inner_texts()]


def test_the_colour_toggle_and_filter_change_the_request_and_the_answer(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    """Issue 30: the group says the colour it saw; "any colour" ranks by shape alone (no colour
    weight sent); "only in" keeps one colour; "other" and a colour set each other aside."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(indexed.url)
    only_in = page.get_by_label("Only in")
    expect(only_in.locator("option")).to_have_count(1 + len(SHOPPER_COLOURS))
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    assert "colour" not in answer.value.url  # the defaults: same colour first, any colour
    first = answer.value.json()["groups"][0]
    seen, sure = first["colour"]["name"], round(first["colour"]["probability"] * 100)
    _wait_for_answer(page)
    tag = page.locator("#results-title .seen-colour")
    expect(tag).to_have_text(seen)
    expect(tag).to_have_attribute("title", f"Seen as {seen} ({sure}% sure)")
    expect(page.locator("#status")).to_contain_text(f"({seen})")
    expect(page.locator("#details-list li").first).to_contain_text(
        f"colour seen {seen}, {sure}% sure"
    )
    assert _card_colours(page) == [p["colour"] for p in first["recommendations"] if p["colour"]]
    _no_percentages(page)

    # Any colour: shape alone, so the colour vs. shape weight is neither sent nor offered.
    slider = page.get_by_label("Colour vs. shape")
    with page.expect_response(re.compile(r"/recommend\?.*colour_mode=any")) as anyhow:
        _choose_colour_mode(page, "any")
    assert "color_weight" not in anyhow.value.url
    by_shape = _products(anyhow.value)
    scored = [(p["id"], p["score"]) for p in first["recommendations"]]
    assert [(p["id"], p["score"]) for p in by_shape] != scored
    _wait_for_answer(page)
    expect(slider).to_be_disabled()

    # Only in one colour: another colour than the garment's, that the shop has in its kind.
    wanted = next(p["colour"] for p in by_shape if p["colour"] and p["colour"] != seen)
    with page.expect_response(re.compile(rf"/recommend\?.*colour={wanted}")) as kept:
        only_in.select_option(wanted)
    assert "colour_mode=any" in kept.value.url
    assert {p["colour"] for p in _products(kept.value)} == {wanted}
    _wait_for_answer(page)
    expect(page.locator("#grid .card")).to_have_count(len(_products(kept.value)))
    assert set(_card_colours(page)) == {wanted}
    page.screenshot(path=str(artifacts / "17-only-in-a-colour.png"), full_page=True)

    # Another colour than the garment's sets the one colour aside, and back.
    with page.expect_response(re.compile(r"/recommend\?.*colour_mode=other")) as other:
        _choose_colour_mode(page, "other")
    assert "colour=" not in other.value.url.replace("colour_mode=", "")
    assert seen not in {p["colour"] for p in _products(other.value)}
    _wait_for_answer(page)
    expect(only_in).to_have_value("")
    expect(page.locator("#results-title .seen-colour")).to_have_text(f"not {seen}")
    with page.expect_request(re.compile(rf"/recommend\?.*colour={wanted}")) as again:
        only_in.select_option(wanted)
    assert "colour_mode" not in again.value.url  # back to the garment's own colour first
    _wait_for_answer(page)
    expect(page.get_by_label("Same colour", exact=True)).to_be_checked()
    expect(slider).to_be_enabled()

    # Words alone have no garment colour to avoid: "other" is not offered for them.
    _choose_colour_mode(page, "other")
    page.get_by_role("button", name="Start over").click()
    box = page.get_by_label("Search by words")
    box.fill("tee")
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as words:
        box.press("Enter")
    assert words.value.status == 200 and "colour_mode" not in words.value.url
    _wait_for_answer(page)
    expect(page.get_by_label("Other colour", exact=True)).to_be_disabled()
    expect(page.get_by_label("Same colour", exact=True)).to_be_checked()
    expect(page.locator("#results-title .seen-colour")).to_have_count(0)
    assert not errors


def test_similar_in_another_colour_shows_none_of_the_product_s_colour(
    page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    page.goto(indexed.url)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as answer:
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    products = answer.value.json()["groups"][0]["recommendations"]
    _wait_for_answer(page)
    product = next(p for p in products if p["colour"])
    card = page.locator(f'#grid .card[data-product-id="{product["id"]}"]')
    expect(card.locator(".card-colour")).to_have_text(product["colour"])
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as other:
        card.get_by_role("button", name=f"Similar, in another colour: {product['title']}").click()
    assert "colour_mode=other" in other.value.url
    assert json.loads(other.value.request.post_data or "{}")["product_id"] == product["id"]
    [group] = other.value.json()["groups"]
    assert group["colour"]["name"] == product["colour"]  # the product's colour, seen
    shown = group["recommendations"]
    assert shown and product["colour"] not in {p["colour"] for p in shown}
    _wait_for_answer(page)
    expect(page.locator("#photo-caption")).to_have_text(f"In another colour: {product['title']}")
    expect(page.locator("#results-title .seen-colour")).to_have_text(f"not {product['colour']}")
    expect(page.get_by_label("Other colour", exact=True)).to_be_checked()
    expect(page.locator("#grid .card")).to_have_count(len(shown))
    assert product["colour"] not in _card_colours(page)
    _no_percentages(page)
    page.screenshot(path=str(artifacts / "18-in-another-colour.png"), full_page=True)

    # "More like this" on one of them: its own colour first again.
    card = page.locator("#grid .card").first
    name = card.get_by_role("heading").inner_text()
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS) as more:
        card.get_by_role("button", name=f"More like this: {name}").click()
    assert more.value.status == 200 and "colour_mode" not in more.value.url
    _wait_for_answer(page)
    expect(page.get_by_label("Same colour", exact=True)).to_be_checked()


def test_a_colour_the_server_refuses_shows_its_reason(
    page: Page, indexed: Stack, outfit_photo: Path
) -> None:
    """The server's 422 for a colour it does not know, in the page's error area; the answer on
    screen stays."""
    page.goto(indexed.url)
    with page.expect_response(RECOMMEND, timeout=QUERY_TIMEOUT_MS):
        page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)
    cards = page.locator("#grid .card").count()
    only_in = page.get_by_label("Only in")
    only_in.evaluate("select => select.add(new Option('Mauvish', 'mauvish'))")
    with page.expect_response(re.compile(r"/recommend\?.*colour=mauvish")) as refused:
        only_in.select_option("mauvish")
    assert refused.value.status == 422
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("We couldn't search by that colour.")
    expect(alert).to_contain_text("Unknown colour 'mauvish': give one of black, white")
    expect(page.locator("#grid .card")).to_have_count(cards)


def test_the_colour_controls_fit_a_phone(
    mobile_page: Page, indexed: Stack, outfit_photo: Path, artifacts: Path
) -> None:
    page = mobile_page
    page.goto(indexed.url)
    page.get_by_label("Choose a photo").set_input_files(outfit_photo)
    _wait_for_answer(page)
    page.locator("#refine summary").click()
    for control in (
        page.locator("label[for=f-colour-other]"),
        page.get_by_label("Only in"),
        page.locator("#results-title .seen-colour"),
        page.locator("#grid .card").first.locator(".other-colour"),
    ):
        bounds = control.bounding_box()
        assert bounds and bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= 390, bounds
    card = page.locator("#grid .card").first.bounding_box()
    action = page.locator("#grid .card").first.locator(".other-colour").bounding_box()
    assert card and action and action["x"] + action["width"] <= card["x"] + card["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#f-colour-mode").screenshot(path=str(artifacts / "19-phone-colour.png"))
    page.screenshot(path=str(artifacts / "19-phone-colour-full.png"), full_page=True)


# ------------------------------------------------------------------------------ viewed, offers


def _is_strip_query(response: Any) -> bool:
    """A ``/recommend`` of the "Based on what you viewed" strip (its body names ``viewed``)."""
    return bool(RECOMMEND.search(response.url)) and '"viewed"' in (response.request.post_data or "")


def _strip_ids(page: Page) -> list[int]:
    ids = page.locator("#viewed .card").evaluate_all("els => els.map(e => e.dataset.productId)")
    return [int(pid) for pid in ids]


def _view_from_strip(page: Page, card: int = 0) -> tuple[int, dict[str, Any], list[int]]:
    """ "More like this" on a strip card: it is viewed; the strip asks again. Returns the
    product, the strip's request body and the products it then shows."""
    target = page.locator("#viewed .card").nth(card)
    product = int(target.get_attribute("data-product-id") or 0)
    with page.expect_response(_is_strip_query, timeout=QUERY_TIMEOUT_MS) as answer:
        target.get_by_role("button", name=re.compile("^More like this")).click()
    assert answer.value.status == 200, answer.value.text()
    expect(page.locator("#viewed")).not_to_have_attribute("aria-busy", "true")
    return product, json.loads(answer.value.request.post_data or "{}"), _strip_ids(page)


def test_based_on_what_you_viewed_follows_the_history_kept_in_the_browser(
    page: Page, indexed: Stack, artifacts: Path
) -> None:
    """Issue 32's page: three products viewed fill and change the strip; "not for me" takes
    one out and pushes the strip away from it; "clear history" removes it. The history lives in
    this browser's localStorage, one per shop scope, and goes with each strip query only."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{indexed.url}/?shop=demo-shop")
    strip = page.locator("#viewed")
    expect(strip).to_be_hidden()  # no history yet, and no query for one
    box = page.get_by_label("Search by words")
    box.fill("navy tee")
    box.press("Enter")
    _wait_for_answer(page)

    first = page.locator("#grid .card").first
    viewed = [int(first.get_attribute("data-product-id") or 0)]
    with page.expect_response(_is_strip_query, timeout=QUERY_TIMEOUT_MS) as answer:
        first.get_by_role("button", name=re.compile("^More like this")).click()
    assert answer.value.status == 200, answer.value.text()
    assert "shop=demo-shop" in answer.value.url  # the page's shop scope
    body = json.loads(answer.value.request.post_data or "{}")
    assert [view["product_id"] for view in body["viewed"]] == viewed and "not_for_me" not in body
    expect(strip).to_be_visible()
    expect(strip.get_by_role("heading", name="Based on what you viewed")).to_be_visible()
    expect(strip.locator(".card").first).to_be_visible()
    shown = _strip_ids(page)
    assert shown and viewed[0] not in shown

    for _ in range(2):  # two more, each from the strip: viewed, it leaves the strip
        product, body, now = _view_from_strip(page)
        viewed.insert(0, product)
        assert [view["product_id"] for view in body["viewed"]] == viewed  # newest first
        assert all(view["seen_at"].endswith("Z") for view in body["viewed"])
        assert product not in now and not set(viewed) & set(now)
        assert now != shown
        shown = now
    page.screenshot(path=str(artifacts / "20-viewed-strip.png"), full_page=True)

    rejected = shown[0]
    card = strip.locator(f'.card[data-product-id="{rejected}"]')
    with page.expect_response(_is_strip_query, timeout=QUERY_TIMEOUT_MS) as answer:
        card.get_by_role("button", name=re.compile("^Not for me")).click()
    body = json.loads(answer.value.request.post_data or "{}")
    assert answer.value.status == 200 and body["not_for_me"] == [rejected]
    expect(strip).not_to_have_attribute("aria-busy", "true")
    expect(strip.locator(f'.card[data-product-id="{rejected}"]')).to_have_count(0)
    expect(page.locator("#viewed-status")).to_contain_text("Noted: fewer like")
    stored = page.evaluate("localStorage.getItem('lookalike-viewed:demo-shop')")
    assert stored is not None
    kept = json.loads(stored)
    assert [view["product_id"] for view in kept["viewed"]] == viewed
    assert kept["not_for_me"] == [rejected]

    # The history outlives the page (it is the browser's), within its shop scope only.
    with page.expect_response(_is_strip_query, timeout=QUERY_TIMEOUT_MS) as answer:
        page.reload()
    assert json.loads(answer.value.request.post_data or "{}")["not_for_me"] == [rejected]
    expect(strip.locator(".card").first).to_be_visible()
    page.goto(indexed.url)
    expect(page.locator("#viewed")).to_be_hidden()

    page.goto(f"{indexed.url}/?shop=demo-shop")
    expect(strip.locator(".card").first).to_be_visible(timeout=QUERY_TIMEOUT_MS)
    strip.get_by_role("button", name="Clear history").click()
    expect(strip).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Your viewing history is cleared.")
    assert page.evaluate("localStorage.getItem('lookalike-viewed:demo-shop')") is None
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.post_data or ""))
    page.reload()
    page.wait_for_load_state("networkidle")
    expect(strip).to_be_hidden()
    assert not [data for data in sent if '"viewed"' in data]
    assert not errors


def test_a_product_the_catalog_lost_leaves_the_history(page: Page, indexed: Stack) -> None:
    """A viewed product the shop no longer has is refused by name (422); the page forgets it
    and asks again with the rest instead of showing an error."""
    products = httpx.post(f"{indexed.url}/recommend", json={"text": "tee"}, timeout=60).json()
    known = products["groups"][0]["recommendations"][0]["id"]
    lost = 2**40
    history = {
        "viewed": [
            {"product_id": lost, "seen_at": "2026-01-01T10:00:00.000Z"},
            {"product_id": known, "seen_at": "2026-01-01T09:00:00.000Z"},
        ],
        "not_for_me": [],
    }
    page.add_init_script(
        f"localStorage.setItem('lookalike-viewed:*', {json.dumps(json.dumps(history))})"
    )
    answers: list[Any] = []
    page.on(
        "response", lambda response: answers.append(response) if _is_strip_query(response) else None
    )
    page.goto(indexed.url)
    expect(page.locator("#viewed .card").first).to_be_visible(timeout=QUERY_TIMEOUT_MS)
    assert [answer.status for answer in answers] == [422, 200]
    stored = json.loads(page.evaluate("localStorage.getItem('lookalike-viewed:*')"))
    assert [view["product_id"] for view in stored["viewed"]] == [known]
    expect(page.get_by_role("alert")).to_be_hidden()


def _with_offers(answer: dict[str, Any]) -> dict[str, Any]:
    """The real answer, its first product also sold at three other shops (cheapest first) and
    at one whose link is no web address (never shown)."""
    first = answer["groups"][0]["recommendations"][0]
    first["offers"] = [
        {
            "id": 9001,
            "shop": "east-shop",
            "title": "Navy tee",
            "price": 18.5,
            "currency": "EUR",
            "url": "https://east.example/tee",
        },
        {
            "id": 9002,
            "shop": "a-shop-with-a-rather-long-name",
            "title": "Tee",
            "price": 21,
            "currency": "EUR",
            "url": "https://long.example/tee",
        },
        {
            "id": 9003,
            "shop": "bad",
            "title": "Tee",
            "price": 1,
            "currency": "EUR",
            "url": "javascript:alert(1)",
        },
        {
            "id": 9004,
            "shop": "west-shop",
            "title": "Tee",
            "price": None,
            "currency": None,
            "url": "https://west.example/tee",
        },
    ]
    return answer


def test_a_product_at_other_shops_says_also_at_with_their_prices(
    browser: Browser, indexed: Stack, artifacts: Path
) -> None:
    """Issue 31: the answer's ``offers`` show on the card as compact "Also at SHOP · price"
    links (two named, the rest counted), at 1280 and at 390 px. The test stack has one shop,
    so a real answer is given offers on its way to the page (as a two-shop catalog answers;
    tests/integration/test_offers_api.py)."""
    real = httpx.post(f"{indexed.url}/recommend", json={"text": "navy tee"}, timeout=60)
    assert real.status_code == 200
    answer = _with_offers(real.json())
    first_id = answer["groups"][0]["recommendations"][0]["id"]
    for width, height, mobile in ((1280, 900, False), (390, 844, True)):
        context = browser.new_context(
            viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile
        )
        page = context.new_page()
        page.route(
            RECOMMEND, lambda route: route.fulfill(json=answer, headers={"X-Request-ID": "t"})
        )
        page.goto(indexed.url)
        box = page.get_by_label("Search by words")
        box.fill("navy tee")
        box.press("Enter")
        _wait_for_answer(page)
        card = page.locator(f'#grid .card[data-product-id="{first_id}"]')
        offers = card.locator(".card-offers li")
        expect(offers).to_have_count(3)
        expect(offers.nth(0)).to_have_text("Also at east-shop · €18.50")
        expect(offers.nth(0).get_by_role("link")).to_have_attribute(
            "href", "https://east.example/tee"
        )
        expect(offers.nth(1)).to_contain_text("Also at a-shop-with-a-rather-long-name · €21.00")
        expect(offers.nth(2)).to_have_text("+1 more shop")
        expect(card.get_by_role("link", name=re.compile("bad"))).to_have_count(0)
        expect(page.locator("#grid .card").nth(1).locator(".card-offers")).to_have_count(0)
        # Compact: the long shop name is cut within the card, never widening the page.
        inner, outer = offers.nth(1).bounding_box(), card.bounding_box()
        assert inner and outer and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(artifacts / f"21-offers-{width}.png"), full_page=False)
        card.screenshot(path=str(artifacts / f"21-offers-card-{width}.png"))
        context.close()
