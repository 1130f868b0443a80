"""A service started the way compose starts it (``python -m services.recommender``) does not
let a client hold a connection by trickling its request head: after
``LOOKALIKE_HEADER_TIMEOUT_S`` it answers 408 and closes; prompt clients are served."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.stack import free_port, stack_env

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    data_dir = tmp_path_factory.mktemp("header-timeout")
    port = free_port()
    env = {
        **stack_env(data_dir),
        "LOOKALIKE_PORT": str(port),
        "LOOKALIKE_HEADER_TIMEOUT_S": str(TIMEOUT_S),
    }
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.recommender"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=20)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_trickled_head_gets_408_and_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=TIMEOUT_S + 5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        sock.sendall(b"X-Slow: 1\r\n")  # still trickling, never the blank line
        answer = _read_all(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert TIMEOUT_S - 0.1 <= waited < TIMEOUT_S + 2


def test_a_silent_connection_is_closed_too(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=TIMEOUT_S + 5) as sock:
        started = time.monotonic()
        answer = _read_all(sock)
        assert time.monotonic() - started < TIMEOUT_S + 2
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_prompt_clients_are_served_past_the_limit(server: tuple[str, int]) -> None:
    host, port = server
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):  # one kept-alive connection, longer than the header limit
            assert client.get("/healthz").json() == {"status": "ok"}
            time.sleep(TIMEOUT_S / 2)
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(TIMEOUT_S + 0.5)  # the head arrived: the request is answered, not timed out
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
