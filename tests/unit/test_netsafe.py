"""Private-network refusal for URLs that come from outside."""

from __future__ import annotations

import pytest

from shared.netsafe import UnresolvableURLError, UnsafeURLError, check_url, host_port

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://localhost:8000/x.jpg",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://224.0.0.1/",
        # IPv6 forms that embed a private IPv4 address, and special blocks 3.11 calls global
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::1]/",
        "http://[2002:7f00:1::1]/",
        "http://[2002:c0a8:101::1]/",
        "http://[2001::1]/",
        "http://192.0.0.8/",
        "http://192.0.0.170/",
        "http://198.18.0.1/",
    ],
)
def test_private_and_special_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="refused"):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "malformed"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeURLError, match=message):
        check_url(url, resolve_host=False)


def test_private_addresses_pass_when_allowed() -> None:
    checked = check_url("http://127.0.0.1:8001/p/1", allow_private=True)
    assert checked.addresses == ("127.0.0.1",)
    assert (checked.host, checked.port) == ("127.0.0.1", 8001)


def test_public_literal_passes_without_resolving() -> None:
    checked = check_url("https://93.184.216.34/a.jpg", resolve_host=False)
    assert checked.port == 443 and checked.addresses == ("93.184.216.34",)


def test_unresolvable_host_is_a_clear_error() -> None:
    with pytest.raises(UnresolvableURLError, match="does not resolve"):
        check_url("http://no-such-host.invalid/x.jpg")


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "[2606:4700::1111]", "[::ffff:8.8.8.8]", "[64:ff9b::808:808]"]
)
def test_public_addresses_pass_also_when_embedded(host: str) -> None:
    assert check_url(f"http://{host}/a.jpg", resolve_host=False).addresses


@pytest.mark.parametrize(
    ("text", "spelt"),
    [
        ("127.0.0.1:8001", "127.0.0.1:8001"),
        ("LocalHost:80", "localhost:80"),
        ("[::1]:8001", "[::1]:8001"),
        (" shop.internal:443 ", "shop.internal:443"),
    ],
)
def test_host_port_has_one_spelling(text: str, spelt: str) -> None:
    assert host_port(text) == spelt


@pytest.mark.parametrize("text", ["127.0.0.1", "http://127.0.0.1:8001", "a:b", ":8001", "h:1/x"])
def test_host_port_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        host_port(text)


def test_only_the_named_host_and_port_pass() -> None:
    allowed = {"127.0.0.1:8001", "[::1]:8001"}
    assert check_url("http://127.0.0.1:8001/p/1", allow_hosts=allowed).port == 8001
    assert check_url("http://[::1]:8001/", allow_hosts=allowed).addresses == ("::1",)
    for url in (
        "http://127.0.0.1:8002/p/1",  # another port on the same host
        "http://127.0.0.1/p/1",  # the scheme's port
        "http://169.254.169.254:8001/latest/meta-data/",  # another private host
        "http://10.0.0.1:8001/",
    ):
        with pytest.raises(UnsafeURLError, match="refused"):
            check_url(url, allow_hosts=allowed)
    assert check_url("https://127.0.0.1/x", allow_hosts={"127.0.0.1:443"}).port == 443
