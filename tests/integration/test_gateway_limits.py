"""The gateway under abuse, on a real uvicorn server and a real catalog: body limits that hold
while streaming, 422 (never 500) for huge integers, deep JSON and booleans posing as numbers,
storefront feedback bound to real answers and rate limited, forwarded headers believed only
from configured proxies, and error answers in the documented shape."""

from __future__ import annotations

import select
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from shared.settings import Settings
from tests.gateway_support import LIMIT, serve
from tests.gateway_support import gateway_settings as _settings

pytestmark = pytest.mark.integration

HUGE = 2**64


@pytest.fixture
def product_id(catalog: Catalog) -> int:
    source = catalog.upsert_source(SourceIn(name="acme", base_url="https://shop.example"))
    item = ProductIn(
        canonical_url="https://shop.example/p/1",
        title="Shirt",
        price=Decimal("25.00"),
        currency="EUR",
        images=(ImageIn(url="https://shop.example/i/1.jpg"),),
    )
    return catalog.upsert_products(source.id, [item]).created[0]


@pytest.fixture
def gateway(catalog: Catalog, settings: Settings) -> Iterator[str]:
    with serve(_settings(settings.data_dir), catalog) as url:
        yield url


@pytest.fixture
def client(catalog: Catalog, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(settings.data_dir), catalog=catalog)) as test_client:
        yield test_client


# ------------------------------------------------------------------------ the body limit


def _stream(url: str, path: str, content_type: str, first: bytes, filler: bytes) -> tuple[int, int]:
    """POST a chunked body with no length (``first``, then ``filler`` over and over, up to
    200 MB) and stop as soon as the server answers. Returns (status, bytes sent)."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        chunk = first
        while sent < 200_000_000:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            chunk = filler
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, sent


BOUNDARY = "lookalike-test-boundary"
MULTIPART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
).encode()


@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        ("/recommend", "application/json", b'{"image_url": "'),
        ("/recommend", f"multipart/form-data; boundary={BOUNDARY}", MULTIPART_HEAD),
        ("/feedback", "application/json", b'{"kind": "'),
    ],
)
@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_a_body_without_length_is_cut_at_the_limit(
    gateway: str, path: str, content_type: str, first: bytes
) -> None:
    status, sent = _stream(gateway, path, content_type, first, b"x" * 65536)
    assert status == 413
    # The answer came after the limit, long before the 200 MB were sent: what is in flight is
    # the limit plus socket buffers, not the body.
    assert LIMIT < sent < 40_000_000


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient) -> None:
    response = client.post(
        "/recommend", content=b"{}" * 300_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


# ------------------------------------------------------------------- 422s, never 500s


def test_integers_beyond_64_bits_are_422(
    client: TestClient, product_id: int, settings: Settings
) -> None:
    recommend = client.post("/recommend", json={"product_id": HUGE})
    assert recommend.status_code == 422
    assert recommend.json()["error"] == "invalid_input"
    assert "product_id" in recommend.json()["detail"]
    product = client.get(f"/products/{HUGE}")
    assert product.status_code == 422 and product.json()["error"] == "invalid_input"
    event = {"kind": "click", "product_id": product_id, "position": HUGE, "request_id": "r"}
    feedback = client.post("/feedback", json=event)
    assert feedback.status_code == 422 and "position" in feedback.json()["detail"]
    assert (
        client.post("/feedback", json={**event, "position": 0, "product_id": HUGE}).status_code
        == 422
    )


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/recommend", "/feedback"])
def test_a_number_past_pythons_digit_limit_is_422(client: TestClient, path: str) -> None:
    """More than 4,300 digits: Python refuses to read the integer (issue 27: a plain-text 500)."""
    body = b'{"product_id": ' + b"9" * 4_301 + b', "request_id": "r", "kind": "click"}'
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert "4,300 digits" in response.json()["detail"]


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 5_000, b"[" * 2_000 + b"]" * 2_000])
@pytest.mark.parametrize("path", ["/recommend", "/feedback"])
def test_deeply_nested_json_is_422(client: TestClient, body: bytes, path: str) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/recommend", {"product_id": 1, "k": True}, "k"),
        ("/recommend", {"product_id": 1, "color_weight": True}, "color_weight"),
        ("/recommend", {"product_id": 1, "diversity": False}, "diversity"),
        ("/recommend", {"product_id": 1, "cross_category": 1}, "cross_category"),
        ("/recommend", {"product_id": True}, "product_id"),
        ("/feedback", {"kind": "click", "product_id": 1, "score": False}, "score"),
        ("/feedback", {"kind": "click", "product_id": 1, "position": True}, "position"),
        ("/feedback", {"kind": "click", "product_id": True}, "product_id"),
    ],
)
def test_booleans_are_not_numbers(client: TestClient, path: str, body: dict, field: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert field in response.json()["detail"]


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_framework_errors_have_the_project_shape(client: TestClient) -> None:
    broken = client.post(
        "/recommend",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code == 400
    assert broken.json()["error"] == "bad_request" and broken.json()["detail"]
    missing = client.get("/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.delete("/recommend")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


# ------------------------------------------------------------------------------ feedback


def _event(product_id: int, request_id: str | None = "never-shown", **more: object) -> dict:
    return {"kind": "purchase", "product_id": product_id, "request_id": request_id, **more}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_storefront_feedback_is_bound_to_a_recent_answer(
    catalog: Catalog, settings: Settings, product_id: int, redis_db_url: str, backend: str
) -> None:
    gateway_settings = _settings(settings.data_dir)
    if backend == "redis":
        gateway_settings = gateway_settings.model_copy(update={"redis_url": redis_db_url})
    with TestClient(create_app(gateway_settings, catalog=catalog)) as client:
        unbound = client.post("/feedback", json=_event(product_id, None))
        assert unbound.status_code == 422 and "request_id" in unbound.json()["detail"]
        unknown = client.post("/feedback", json=_event(product_id))
        assert unknown.status_code == 422 and "no recent /recommend answer" in unknown.text
        answer = uuid.uuid4().hex  # the Redis db outlives one test
        client.app.state.answers.remember(answer, [product_id])  # as /recommend does
        shown = _event(product_id, answer)
        assert client.post("/feedback", json=shown).status_code == 201
        again = client.post("/feedback", json=shown)
        assert again.status_code == 409 and again.json()["error"] == "duplicate"
        assert client.post("/feedback", json={**shown, "kind": "click"}).status_code == 201
        other = client.post("/feedback", json={**shown, "product_id": product_id + 1})
        assert other.status_code == 422
    rows = catalog.run_query("SELECT kind FROM feedback_events ORDER BY id")
    assert [row["kind"] for row in rows] == ["purchase", "click"]


def test_storefront_feedback_is_rate_limited_and_admin_keys_are_not(
    catalog: Catalog, settings: Settings, product_id: int
) -> None:
    limited = _settings(settings.data_dir, feedback_rate_limit_per_minute=3)
    with TestClient(create_app(limited, catalog=catalog)) as client:
        statuses = [client.post("/feedback", json=_event(product_id)).status_code for _ in range(4)]
        assert statuses == [422, 422, 422, 429]  # junk counts against the budget too
    admin = limited.model_copy(update={"api_key": "s3cret"})
    with TestClient(create_app(admin, catalog=catalog)) as client:
        headers = {"X-API-Key": "s3cret"}
        for _ in range(5):  # any event, no answer needed, not limited
            response = client.post("/feedback", json=_event(product_id, None), headers=headers)
            assert response.status_code == 201
        assert client.post("/feedback", json=_event(product_id)).status_code == 401


# ------------------------------------------------------------------ forwarded headers


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("trusted", "spoofable"), [([], False), (["127.0.0.1"], True)])
def test_forwarded_for_counts_only_from_trusted_proxies(
    catalog: Catalog, settings: Settings, trusted: list[str], spoofable: bool
) -> None:
    gateway_settings = _settings(
        settings.data_dir, feedback_rate_limit_per_minute=2, trusted_proxies=trusted
    )
    with serve(gateway_settings, catalog) as url, httpx.Client(base_url=url) as http:

        def send(address: str) -> int:
            headers = {"X-Forwarded-For": address}
            return http.post("/feedback", json={"kind": "click"}, headers=headers).status_code

        assert [send("203.0.113.1") for _ in range(3)] == [422, 422, 429]
        fresh = [send(f"203.0.113.{n}") for n in range(2, 12)]
    if spoofable:  # a trusted proxy speaks for its clients: each is a client of its own
        assert set(fresh) == {422}
    else:  # from anyone else the header changes nothing
        assert set(fresh) == {429}


# ---------------------------------------------------------------------------- contract


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_times_are_rfc3339_on_sqlite(client: TestClient, product_id: int) -> None:
    product = client.get(f"/products/{product_id}").json()
    for field in ("first_seen", "last_seen"):
        assert datetime.fromisoformat(product[field]).utcoffset() == timedelta(0), product[field]


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_openapi_documents_the_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    recommend = spec["paths"]["/recommend"]["post"]
    for status in ("400", "404", "413", "415", "422", "429", "503"):
        assert recommend["responses"][status]["content"]["application/json"]["schema"] == error
    product = spec["paths"]["/products/{product_id}"]["get"]["responses"]
    assert product["404"]["content"]["application/json"]["schema"] == error
    assert product["422"]["content"]["application/json"]["schema"] == error
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    body = recommend["requestBody"]["content"]["application/json"]["schema"]
    assert [branch["required"] for branch in body["anyOf"]] == [
        ["image_url"],
        ["product_id"],
        ["text"],
        ["viewed"],
    ]
    assert body["properties"]["product_id"]["anyOf"][0]["maximum"] == 2**53 - 1
    feedback = spec["paths"]["/feedback"]["post"]
    kind = feedback["requestBody"]["content"]["application/json"]["schema"]["properties"]["kind"]
    assert set(kind["enum"]) == {"impression", "click", "purchase"}
    assert "409" in feedback["responses"] and "429" in feedback["responses"]


@pytest.mark.parametrize("catalog", ["sqlite"], indirect=True)
def test_the_schema_and_the_server_agree_on_edge_inputs(client: TestClient) -> None:
    """Issue 27: each answer is the one /openapi.json states."""
    body = client.get("/openapi.json").json()["paths"]["/recommend"]["post"]["requestBody"]
    for content in ("multipart/form-data", "application/json"):
        params = body["content"][content]["schema"]["properties"]
        assert params["brand"]["anyOf"][0]["maxItems"] == 50
        assert params["category"]["anyOf"][0]["maxItems"] == 50
    # A null product_id is not a product_id: the schema's branch wants an integer.
    branches = body["content"]["application/json"]["schema"]["anyOf"]
    assert {"required": ["product_id"], "properties": {"product_id": {"type": "integer"}}} in (
        branches
    )
    null_id = client.post("/recommend", json={"product_id": None})
    assert null_id.status_code == 422 and null_id.json()["error"] == "invalid_input"

    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 64
    brands = {"brand": [f"b{n}" for n in range(51)]}
    many = client.post("/recommend", files={"image": ("a.jpg", jpeg, "image/jpeg")}, data=brands)
    assert many.status_code == 422, many.text
    assert "brand" in many.json()["detail"]
    as_json = client.post(
        "/recommend", json={"image_url": "https://x.example/a.jpg", "brand": ["b"] * 51}
    )
    assert as_json.status_code == 422 and "brand" in as_json.json()["detail"]

    empty = client.post("/recommend", files={"image": ("a.jpg", b"", "image/jpeg")})
    assert empty.status_code == 422, empty.text
    assert empty.json()["detail"] == "the image is empty (0 bytes)"
