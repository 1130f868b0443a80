"""A first run as a new user meets it: ``lookalike run`` on a fresh data dir, searched from the
first second on while it exports its models, crawls the demo shop and indexes it.

Nothing may break: every search is answered (no 5xx once the gateway listens), ``/readyz`` is
honest throughout (ready means a search is answered with products' ranks, and it never goes
back), and every demo image ends up indexed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from services.demo_shop.catalog import DemoCatalog, render_image
from tests.stack import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PRODUCTS = 48
DEMO = DemoCatalog.generate(PRODUCTS, seed=0)
DEADLINE_S = 420


def _search(url: str, photo: bytes) -> int | None:
    """One upload; the status, or None when the gateway does not listen yet."""
    try:
        response = httpx.post(
            f"{url}/recommend",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={"k": "4"},
            timeout=120,
        )
    except httpx.TransportError:
        return None
    return response.status_code


def test_searches_from_the_first_second_never_break_the_first_run(tmp_path: Path) -> None:
    photos = [render_image(product) for product in DEMO.products[:3]]
    statuses: list[int] = []
    ready_answers: list[tuple[float, int, dict]] = []
    stop = threading.Event()
    with running_stack(tmp_path, products=PRODUCTS) as (stack, process):
        started = time.monotonic()

        def client(photo: bytes) -> None:
            while not stop.is_set():
                status = _search(stack.url, photo)
                if status is None:
                    time.sleep(0.2)
                    continue
                statuses.append(status)

        with ThreadPoolExecutor(len(photos)) as pool:
            for photo in photos:
                pool.submit(client, photo)
            indexed = False
            try:
                while time.monotonic() - started < DEADLINE_S and not indexed:
                    assert process.poll() is None, stack.log.read_text()
                    try:
                        ready = httpx.get(f"{stack.url}/readyz", timeout=30)
                        status = httpx.get(f"{stack.url}/status", timeout=30).json()
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    ready_answers.append(
                        (time.monotonic() - started, ready.status_code, ready.json())
                    )
                    if ready.status_code == 200:
                        # Ready means searches are answered now, not after another warm-up.
                        assert _search(stack.url, photos[0]) == 200
                    images = status["images"]
                    waiting = images.get("pending", 0) + images.get("processing", 0)
                    indexed = (
                        status["products_active"] == PRODUCTS
                        and images.get("done", 0) > 0
                        and waiting == 0
                        and ready.status_code == 200
                    )
                    time.sleep(0.5)
            finally:
                stop.set()
        assert indexed, f"the demo shop was not indexed in {DEADLINE_S} s:\n{stack.log.read_text()}"
        final = httpx.get(f"{stack.url}/status", timeout=30).json()["images"]
        said_ready = time.monotonic() + 60  # the crawl process exits, the next report says it
        while f"ready: {stack.url}/" not in stack.log.read_text() and time.monotonic() < said_ready:
            time.sleep(0.5)
        log = stack.log.read_text()

    assert final.get("failed", 0) == 0, final
    assert statuses, "no search was answered"
    assert all(status == 200 for status in statuses), sorted(set(statuses))
    codes = [code for _, code, _ in ready_answers]
    first_ready = codes.index(200)
    assert all(code == 200 for code in codes[first_ready:]), "readyz went back to 503"
    for _, code, body in ready_answers:
        assert (code == 200) == all(check["ok"] for check in body["checks"].values())
    assert {"models", "ingest"} <= set(ready_answers[-1][2]["checks"])
    not_ready = [body for _, code, body in ready_answers if code == 503]
    assert not_ready, "readyz was ready before the models could have loaded"
    assert not not_ready[0]["checks"]["models"]["ok"]
    assert log.startswith("Lookalike: starting"), log[:200]
    assert f"ready: {stack.url}/" in log, log
    assert "Traceback" not in log, log
    assert "scrapy.utils.log" not in log, "Scrapy's version dump is noise at the default level"
