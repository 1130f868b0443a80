"""Server mode (Postgres, Redis) on the embedded index, which one process only may open: the
process turned away exits with one line naming the holder, ``ingest-status`` names the holder,
and a gateway that holds the index while its worker was turned away is not ready."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from tests.gateway_support import NO_SERVICE
from tests.ingest_support import LOOKALIKE, Process, server_mode_env
from tests.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def env(
    settings: Settings,
    postgres_url: str,
    redis_db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    return server_mode_env(
        settings,
        postgres_url,
        redis_db_url,
        tmp_path_factory,
        LOOKALIKE_DETECTOR_URL=NO_SERVICE,  # no model loads in the gateway
        LOOKALIKE_EMBEDDER_URL=NO_SERVICE,
    )


def _gateway(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            env={**env, "LOOKALIKE_HOST": "127.0.0.1", "LOOKALIKE_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _ingest_status(env: dict[str, str]) -> str:
    status = subprocess.run(
        [LOOKALIKE, "ingest-status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(status.stdout)["index"].get("detail", "")


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_worker_turned_away_by_the_gateway_exits_and_readyz_says_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = _gateway(env, port, tmp_path / "gateway.log")
    try:
        _until(lambda: _serving(url) or gateway.poll() is not None, 90, "the gateway")
        assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
        assert "ingest" not in httpx.get(f"{url}/readyz", timeout=30).json()["checks"]
        holder = f"gateway (pid {gateway.pid} on "
        assert holder in _ingest_status(env)
        reindex = subprocess.run(  # it asks the holder, which has no ingest to do it with
            [LOOKALIKE, "reindex", "--no-progress"], env=env, capture_output=True, text=True
        )
        assert reindex.returncode == 1
        assert "cannot reindex: this gateway runs no ingest" in reindex.stderr, reindex.stderr

        worker = subprocess.run(
            [LOOKALIKE, "worker"], env=env, capture_output=True, text=True, timeout=120
        )
        assert worker.returncode == 1
        line = _one_line(worker.stdout + worker.stderr)
        assert line.startswith("Error: ") and holder in line and url in line, line

        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503
        ingest = ready.json()["checks"]["ingest"]
        assert ingest["ok"] is False and "worker (pid " in ingest["detail"], ingest
    finally:
        gateway.terminate()
        gateway.wait(30)


def test_a_gateway_turned_away_by_a_worker_exits_naming_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    worker = Process(["worker"], env, tmp_path / "worker.log")
    try:
        holder = f"worker (pid {worker.pid} on "
        _until(lambda: holder in _ingest_status(env), 120, f"the worker:\n{worker.output()}")
        log = tmp_path / "gateway.log"
        gateway = _gateway(env, free_port(), log)
        assert gateway.wait(120) == 1
        line = _one_line(log.read_text())
        assert line.startswith("Error: ") and holder in line, line
    finally:
        worker.stop()
