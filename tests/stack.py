"""A real ``lookalike run`` process (the README's run command) for e2e and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Stack:
    url: str
    shop_url: str
    data_dir: Path
    log: Path


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lookalike run exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"lookalike run did not become healthy:\n{log.read_text()}")


def wait_until_ready(url: str, timeout_s: float = 180) -> httpx.Response:
    """``/readyz`` once it answers 200 (models load, a first run exports them), or its last
    answer when ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = httpx.get(f"{url}/readyz", timeout=30)
        if ready.status_code == 200 or time.monotonic() > deadline:
            return ready
        time.sleep(0.5)


def stack_env(data_dir: Path) -> dict[str, str]:
    """This environment without any Lookalike setting or server URL: embedded defaults."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LOOKALIKE_")
        and key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "QDRANT_URL"}
    }
    env["LOOKALIKE_DATA_DIR"] = str(data_dir)
    return env


@contextmanager
def running_stack(
    workdir: Path, *, products: int = 48, port: int | None = None, shop_port: int | None = None
) -> Iterator[tuple[Stack, subprocess.Popen[bytes]]]:
    """``lookalike run`` in ``workdir`` (data in ``workdir/data``), stopped at the end; yields
    at once, before the stack is healthy."""
    port, shop_port = port or free_port(), shop_port or free_port()
    log = workdir / "run.log"
    command = [
        str(Path(sys.executable).with_name("lookalike")),
        "run",
        "--port",
        str(port),
        "--demo-port",
        str(shop_port),
        "--demo-products",
        str(products),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=stack_env(workdir / "data"), stdout=out, stderr=out
        )
    try:
        url = f"http://127.0.0.1:{port}"
        yield Stack(url, f"http://127.0.0.1:{shop_port}", workdir / "data", log), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``lookalike run`` on embedded defaults, in its own data dir and on free ports."""
    with running_stack(tmp_path_factory.mktemp("stack")) as (running, process):
        _wait_until_healthy(running.url, process, running.log)
        yield running
