"""redirect_to allow-listing, on GoTrue's own test vectors (supabase/auth `internal/utilities/request_test.go`)
plus segbase's refusals of ambiguous URLs."""
from __future__ import annotations

import pytest

from api.auth.redirects import compile_glob, is_allowed_redirect, resolve_redirect
from schemas.settings import Settings


def settings_for(site: str, allow: list[str] | None = None) -> Settings:
    return Settings(_env_file=None, auth_site_url=site, auth_redirect_allow_list=allow or [])


@pytest.mark.parametrize(("site", "url", "allowed"), [
    ("https://example.com", "https://example.com/path", True),
    ("https://example.com", "http://example.com/path", False),            # scheme downgrade
    ("http://example.com", "https://example.com/path", False),            # scheme upgrade
    ("https://example.com", "https://example.com:8443/path", False),
    ("https://example.com:9000", "https://example.com:9000/path", True),
    ("https://example.com:9000", "https://example.com/path", False),
    ("https://example.com:9000", "https://example.com:9001/path", False),
    ("http://localhost:3000", "http://localhost:8080/callback", True),    # RFC 8252 7.3: loopback ports vary
    ("http://127.0.0.1:3000", "http://127.0.0.1:8080/callback", True),
    ("http://localhost:3000", "http://localhost/callback", True),
    ("https://localhost:3000", "http://localhost:8080/callback", False),
])
def test_same_origin_as_the_site(site, url, allowed):
    assert is_allowed_redirect(url, settings_for(site)) is allowed


ALLOW = ["http://localhost:8000/*", "http://*.localhost:8000/*", "http://*:12345/*", "http://**:12345/*"]


@pytest.mark.parametrize(("url", "expected"), [
    ("http://localhost:8000/path", "http://localhost:8000/path"),
    ("http://localhost:3000", "https://example.com"),
    ("http://localhost:8000", "https://example.com"),                     # no / separator
    ("http://localhost:8000/path/to/page", "https://example.com"),        # * respects separators
    ("http://localhost:8000/path?param=1", "http://localhost:8000/path?param=1"),
    ("http://123?.localhost:8000/path", "https://example.com"),           # decimal IP
    ("http://123.123.123.123?localhost:8000/path", "https://example.com"),
    ("http://[65e7:9410:d8b6:e227:58cd:e55b:8fc0:206d]?localhost:8000/path", "https://example.com"),
    ("http://65e7:9410:d8b6:e227:58cd:e55b:8fc0:206d?localhost:8000/path", "https://example.com"),
    ("http://127.0.0.1:12345/path", "http://127.0.0.1:12345/path"),
    ("http://[0:0:0:0:0:0:0:1]:12345/path", "http://[0:0:0:0:0:0:0:1]:12345/path"),
    ("https://example.com/dashboard", "https://example.com/dashboard"),
    ("http://example.com/dashboard", "https://example.com"),
    ("https://example.com:8443/dashboard", "https://example.com"),
])
def test_gotrue_referrer_vectors(url, expected):
    assert resolve_redirect(url, settings_for("https://example.com", ALLOW)) == expected


@pytest.mark.parametrize("url", [
    "https://evil.example\\@example.com/x",          # browsers go to evil.example
    "https://evil.example@example.com/x",            # user info
    "https://example.com/\tx", "https://example.com/ x", "https://example.com/\x00",
    "javascript:alert(1)", "", None,
])
def test_ambiguous_or_empty_urls_fall_back_to_the_site(url):
    assert resolve_redirect(url, settings_for("https://example.com", ["**"])) == "https://example.com"


def test_custom_schemes_need_the_allow_list_and_the_referer_is_a_second_choice():
    settings = settings_for("https://example.com", ["io.supabase.app://login-callback", "https://*.example.com/**"])
    assert resolve_redirect("io.supabase.app://login-callback", settings) == "io.supabase.app://login-callback"
    assert resolve_redirect("other.app://x", settings) == "https://example.com"
    assert resolve_redirect(None, settings, referer="https://a.example.com/deep/page") == \
        "https://a.example.com/deep/page"
    assert resolve_redirect("https://a.example.com/x#frag", settings) == "https://a.example.com/x#frag"


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("*.example.com", "a.example.com", True), ("*.example.com", "a.b.example.com", False),
    ("**.example.com", "a.b.example.com", True), ("?.x", "a.x", True), ("?.x", "ab.x", False),
    ("{a,b}.x", "b.x", True), ("{a,b}.x", "c.x", False), ("[ab].x", "a.x", True), ("[!ab].x", "a.x", False),
    ("a\\*b", "a*b", True), ("a\\*b", "axb", False),
])
def test_glob_semantics(pattern, text, matches):
    assert bool(compile_glob(pattern).match(text)) is matches
