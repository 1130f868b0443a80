"""``lookalike reindex`` while ``lookalike run`` is up: the running process holds the embedded
index, so the command asks it (``POST /admin/reindex``) and follows its progress; searches keep
answering through the switch."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from shared import index_layout
from tests.ingest_support import LOOKALIKE
from tests.stack import running_stack, stack_env, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NEW_MODEL = ["--model", "efficientnet_lite0", "--weights", "random", "--runtime", "torch"]
NEW_VERSION = "efficientnet_lite0-random"


def _indexed(url: str, timeout_s: float = 180) -> bool:
    """The demo shop crawled and every image indexed (the stack may still be starting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            images = httpx.get(f"{url}/status", timeout=10).json()["images"]
        except httpx.HTTPError:
            images = {}
        if images.get("done", 0) and images.get("pending", 0) + images.get("processing", 0) == 0:
            return True
        time.sleep(0.5)
    return False


def test_reindex_asks_the_running_stack_with_no_downtime(tmp_path: Path) -> None:
    with running_stack(tmp_path, products=4) as (stack, process):
        assert _indexed(stack.url), stack.log.read_text()
        assert wait_until_ready(stack.url, 120).status_code == 200, stack.log.read_text()
        answers: list[int] = []
        stop = threading.Event()

        def search() -> None:  # a shopper's "more like this" all along, under the rate limit
            while not stop.wait(0.6):
                answer = httpx.post(f"{stack.url}/recommend", json={"product_id": 1}, timeout=30)
                answers.append(answer.status_code)

        shopper = threading.Thread(target=search)
        shopper.start()
        try:
            result = subprocess.run(
                [LOOKALIKE, "reindex", "--settle", "0", *NEW_MODEL],
                env=stack_env(stack.data_dir),
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            stop.set()
            shopper.join(60)
        progress = httpx.get(f"{stack.url}/admin/reindex", timeout=10).json()
        status = subprocess.run(
            [LOOKALIKE, "ingest-status", "--json"],
            env=stack_env(stack.data_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert process.poll() is None, "the stack kept running"
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(len(line) < 120 for line in lines), lines
    assert f"asking lookalike run (pid {process.pid} on " in result.stderr
    assert "reindex: done" in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert (report["state"], report["model_version"]) == ("done", NEW_VERSION)
    assert report["collection"] == index_layout.collection_name(NEW_VERSION)
    assert report["embedded"] == report["total"] > 0 and report["failed"] == 0
    assert progress["state"] == "done"
    assert len(answers) >= 3 and set(answers) == {200}, answers
    held = json.loads(status.stdout)["index"]["detail"]
    assert f"lookalike run (pid {process.pid} on " in held, held
