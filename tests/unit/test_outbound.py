"""Outbound URL checks: the forms that slipped past the allowlist, and their variants."""
from __future__ import annotations

import pytest

from scheduler.content import outbound

REFUSED = [
    "http://127.0.0.1:37863\\@127.0.0.1:33865/x",   # urllib3 connects before the backslash
    "http://169.254.169.254\\@api.example.com/",
    "http://user:pw@api.example.com/",
    "http://api.example.com@169.254.169.254/",
    "http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/",
    "http://[0:0::1]/", "http://API.example.com/", "http://exämple.org/",
    "http://api.example.com /x", "http://api.example.com\t/x", "file:///etc/passwd",
    "gopher://api.example.com/", "http:///x", "http://api.example.com:0/",
    "http://api.example.com:99999/", "http://api.example.com:80a/", "http://localhost./",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_url_that_is_not_plain_is_refused(url):
    with pytest.raises(outbound.UnsafeURL):
        outbound.parse(url)


def test_a_plain_url_keeps_its_path_and_query():
    target = outbound.parse("https://api.example.com:8443/v1/x?city=Z%C3%BCrich")
    assert (target.scheme, target.host, target.port, target.target) == (
        "https", "api.example.com", 8443, "/v1/x?city=Z%C3%BCrich")
    assert target.host_header == "api.example.com:8443"
    assert outbound.parse("http://[::1]:81/").host == "::1"


def test_loopback_needs_its_exact_host_and_port_listed():
    target = outbound.parse("http://localhost:5001/x")
    with pytest.raises(outbound.UnsafeURL, match="internal address"):
        outbound.resolve(target, ("localhost",))
    with pytest.raises(outbound.UnsafeURL, match="not allowed"):
        outbound.resolve(target, ("localhost:5002",))
    assert outbound.resolve(target, ("localhost:5001",)) in ("127.0.0.1", "::1")
    with pytest.raises(outbound.UnsafeURL, match="internal address"):
        outbound.resolve(outbound.parse("http://127.0.0.1:5001/"), ("127.0.0.1",))
