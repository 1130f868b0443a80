"""The README's run command: ``lookalike run`` on embedded defaults, as a new user gets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e


def test_stack_is_ready_with_embedded_stores(stack: Stack) -> None:
    ready = httpx.get(f"{stack.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"]["detail"].startswith("sqlite")
    assert checks["broker"]["detail"] == "sqla+sqlite"
    assert (stack.data_dir / "catalog.sqlite3").is_file()


def test_demo_shop_is_served_and_registered(stack: Stack) -> None:
    shop = httpx.get(stack.shop_url, timeout=10)
    assert shop.status_code == 200
    page = httpx.get(f"{stack.url}/status-page", timeout=10)
    assert "demo-shop" in page.text
    assert stack.shop_url in page.text
    assert httpx.get(f"{stack.url}/status", timeout=10).json()["sources"] == 1


def test_openapi_documents_the_api(stack: Stack) -> None:
    paths = httpx.get(f"{stack.url}/openapi.json", timeout=10).json()["paths"]
    assert {"/healthz", "/readyz", "/status", "/products/{product_id}"} <= set(paths)


def test_status_command_reads_the_same_catalog(stack: Stack) -> None:
    lookalike = str(Path(sys.executable).with_name("lookalike"))
    env = {"LOOKALIKE_DATA_DIR": str(stack.data_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [lookalike, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"sources": 1' in result.stdout
    bad = subprocess.run(
        [lookalike, "query", "DELETE FROM products"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "only read queries are allowed" in bad.stderr
