"""The safe image downloader against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from shared.download import DownloadError, fetch_image, make_client

pytestmark = pytest.mark.integration


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        routes = {
            "/ok.jpg": lambda: self._send(200, JPEG, Content_Type="image/jpeg"),
            "/mislabelled": lambda: self._send(200, JPEG, Content_Type="text/plain"),
            "/page.jpg": lambda: self._send(200, b"<html>hi</html>", Content_Type="image/jpeg"),
            "/missing.jpg": lambda: self._send(404, b"nope"),
            "/broken.jpg": lambda: self._send(500, b"oops"),
            "/busy.jpg": lambda: self._send(429, b"slow down"),
            "/moved": lambda: self._send(302, Location="/ok.jpg"),
            "/elsewhere": lambda: self._send(
                302, Location=f"http://localhost:{self.server.server_address[1]}/ok.jpg"
            ),
            "/loop-a": lambda: self._send(302, Location="/loop-b"),
            "/loop-b": lambda: self._send(302, Location="/loop-a"),
            "/host": lambda: self._send(200, JPEG + self.headers["Host"].encode()),
            "/declared-huge.jpg": lambda: self._send(
                200, JPEG, Content_Type="image/jpeg", Content_Length="999999999"
            ),
        }
        if self.path == "/streamed-huge.jpg":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(JPEG)
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
            return
        if self.path == "/slow.jpg":
            time.sleep(2)
            self._send(200, JPEG)
            return
        routes.get(self.path, lambda: self._send(404))()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up early (size limits, timeouts) are the point of these tests."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(timeout_s=1.0) as http:
        yield http


def test_fetches_an_image_and_sniffs_its_type(server: str, client: httpx.Client) -> None:
    result = fetch_image(f"{server}/mislabelled", client=client, allow_private=True)
    assert result.content == JPEG
    assert result.image_format == "jpeg"
    assert result.content_type == "text/plain"


def test_follows_redirects_checking_every_hop(server: str, client: httpx.Client) -> None:
    result = fetch_image(f"{server}/moved", client=client, allow_private=True)
    assert result.final_url == f"{server}/ok.jpg"
    with pytest.raises(DownloadError, match="redirect loop") as loop:
        fetch_image(f"{server}/loop-a", client=client, allow_private=True)
    assert loop.value.retryable is False
    with pytest.raises(DownloadError, match="more than 0 redirects"):
        fetch_image(f"{server}/moved", client=client, allow_private=True, max_redirects=0)


def test_private_addresses_are_refused_unless_allowed(server: str, client: httpx.Client) -> None:
    with pytest.raises(DownloadError, match="refused") as refused:
        fetch_image(f"{server}/ok.jpg", client=client)
    assert refused.value.retryable is False
    port = server.rsplit(":", 1)[1]
    with pytest.raises(DownloadError, match="refused"):
        fetch_image(f"http://localhost:{port}/ok.jpg", client=client)


def test_exactly_the_allowed_host_and_port_pass(server: str, client: httpx.Client) -> None:
    allowed = {server.removeprefix("http://")}
    assert fetch_image(f"{server}/moved", client=client, allow_hosts=allowed).content == JPEG
    port = server.rsplit(":", 1)[1]
    with pytest.raises(DownloadError, match="refused"):  # the same server, another name
        fetch_image(f"http://localhost:{port}/ok.jpg", client=client, allow_hosts=allowed)
    with pytest.raises(DownloadError, match=r"localhost resolves to .* refused"):
        fetch_image(f"{server}/elsewhere", client=client, allow_hosts=allowed)


def test_connection_is_pinned_but_host_header_is_kept(server: str, client: httpx.Client) -> None:
    port = server.rsplit(":", 1)[1]
    result = fetch_image(f"http://localhost:{port}/host", client=client, allow_private=True)
    assert result.content.endswith(f"localhost:{port}".encode())


@pytest.mark.parametrize(
    ("path", "message", "retryable"),
    [
        ("/missing.jpg", "HTTP 404", False),
        ("/broken.jpg", "HTTP 500", True),
        ("/busy.jpg", "HTTP 429", True),
        ("/page.jpg", "is not an image", False),
        ("/declared-huge.jpg", "the limit is 1000000", False),
        ("/streamed-huge.jpg", "larger than the limit", False),
        ("/slow.jpg", "timed out", True),
    ],
)
def test_failures_are_classified(
    server: str, client: httpx.Client, path: str, message: str, retryable: bool
) -> None:
    with pytest.raises(DownloadError, match=message) as failure:
        fetch_image(f"{server}{path}", client=client, allow_private=True, max_bytes=1_000_000)
    assert failure.value.retryable is retryable


def test_unreachable_and_unresolvable_hosts_are_retryable(client: httpx.Client) -> None:
    with pytest.raises(DownloadError, match="could not connect") as refused:
        fetch_image("http://127.0.0.1:1/x.jpg", client=client, allow_private=True)
    assert refused.value.retryable is True
    with pytest.raises(DownloadError, match="does not resolve") as unresolvable:
        fetch_image("http://no-such-shop.invalid/x.jpg", client=client)
    assert unresolvable.value.retryable is True
