"""Storefront keys on ``lookalike run`` (embedded SQLite, issue 31): made and removed by the
CLI in another process while the stack serves, they count from the next request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.stack import Stack, stack_env, wait_until_ready

pytestmark = pytest.mark.e2e


def _keys(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    lookalike = str(Path(sys.executable).with_name("lookalike"))
    return subprocess.run(
        [lookalike, "keys", *args],
        env=stack_env(stack.data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_key_made_and_removed_while_the_stack_runs(stack: Stack) -> None:
    assert wait_until_ready(stack.url).status_code == 200
    made = _keys(stack, "add", "demo-web", "--shop", "demo-shop")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    ask = {"text": "tee", "k": 4}

    def recommend(**fields: object) -> httpx.Response:
        return httpx.post(
            f"{stack.url}/recommend",
            json={**ask, **fields},
            headers={"X-API-Key": key},
            timeout=60,
        )

    assert recommend().status_code == 200
    assert recommend(shop="demo-shop").status_code == 200
    outside = recommend(shop="other-shop")
    assert outside.status_code == 403 and "'other-shop'" in outside.json()["detail"]
    assert "demo-web" in _keys(stack, "list").stdout

    assert _keys(stack, "remove", "demo-web").returncode == 0
    gone = recommend()
    assert gone.status_code == 403 and gone.json()["detail"] == "the API key is not valid"
    anyone = httpx.post(f"{stack.url}/recommend", json=ask, timeout=60)
    assert anyone.status_code == 200, "without a key: every shop, as before"
