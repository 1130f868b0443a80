"""The README's run command: ``lookalike run`` on embedded defaults, as a new user gets it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.stack import Stack, free_port, stack_env, wait_until_ready

pytestmark = pytest.mark.e2e


def test_stack_is_ready_with_embedded_stores(stack: Stack) -> None:
    ready = wait_until_ready(stack.url)
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


@pytest.mark.parametrize(
    ("flag", "setting"),
    [("--port", "LOOKALIKE_PORT"), ("--demo-port", "LOOKALIKE_DEMO_PORT")],
)
def test_a_busy_port_is_one_line_naming_its_setting(
    tmp_path: Path, flag: str, setting: str
) -> None:
    lookalike = str(Path(sys.executable).with_name("lookalike"))
    ports = {"--port": free_port(), "--demo-port": free_port()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[flag]))
        taken.listen()
        result = subprocess.run(
            [
                lookalike,
                "run",
                "--port",
                str(ports["--port"]),
                "--demo-port",
                str(ports["--demo-port"]),
            ],
            env=stack_env(tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Lookalike:")]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert f"127.0.0.1:{ports[flag]}" in errors[0] and setting in errors[0], errors
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "qdrant").exists(), "work started before the port check"


def test_the_demo_port_is_a_setting(tmp_path: Path) -> None:
    """``LOOKALIKE_DEMO_PORT`` moves the demo shop (the flag overrides it)."""
    from shared.settings import Settings

    assert Settings(_env_file=None).demo_port == 8001
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOKALIKE_DEMO_PORT", "18123")
        assert Settings(_env_file=None).demo_port == 18123


def _stack_log_when_ready(stack: Stack) -> list[str]:
    """The run's log once it said ``ready`` (the crawl and the indexing done)."""
    assert wait_until_ready(stack.url).status_code == 200
    deadline = time.monotonic() + 120
    while "lookalike: ready: " not in stack.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    return stack.log.read_text().splitlines()


def _seconds(line: str) -> int:
    hours, minutes, seconds = line.split(" ", 1)[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


def test_start_up_says_each_model_once_and_logs_no_requests(stack: Stack) -> None:
    for path in ("/", "/status", "/status-page", "/no-such-page"):
        httpx.get(f"{stack.url}{path}", timeout=30)
    lines = _stack_log_when_ready(stack)
    assert any("lookalike: ready: " in line for line in lines), "\n".join(lines)
    loaded = [line for line in lines if "loaded model " in line]
    assert len(loaded) == 1, "\n".join(loaded)
    assert sum("lookalike: models loaded in " in line for line in lines) == 1
    requests = [line for line in lines if "lookalike.access" in line or " GET /" in line]
    assert requests == []


def test_the_crawling_line_ends_with_the_crawl(stack: Stack) -> None:
    lines = _stack_log_when_ready(stack)
    ended = next(i for i, line in enumerate(lines) if "crawl 1 succeeded" in line)
    progress = [(i, line) for i, line in enumerate(lines) if "lookalike: catalog: " in line]
    after = next(line for i, line in progress if i > ended and "crawling" not in line)
    # The progress thread looks every 3 s; before, the line waited for the scheduler's next
    # poll (30 s) to reap the crawl.
    assert (_seconds(after) - _seconds(lines[ended])) % 86400 <= 6, "\n".join(lines)
