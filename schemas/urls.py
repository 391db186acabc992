"""The rule for URLs a result points at (`source_image_url`, `mask_url`), the same in Python and in PostgreSQL.

A URL is taken only when every reader agrees on where it leads: `https` (or `http` when RESULT_URL_ALLOW_HTTP is
on, for development), at most RESULT_URL_MAX_LENGTH characters, no whitespace, control or invisible formatting
characters and no backslash (browsers read `\\` as `/`, other clients do not), a non-empty host and no credentials
(`user@`) before it. What passes is parsed as a browser would (the WHATWG URL Standard, by the `ada-url` parser),
and an allow-list of hosts (WEBHOOK_MASK_URL_HOSTS) is compared with the host a browser would load — so
`https://evil.example\\@cdn.example/m.png`, which loads from evil.example, is refused twice over.

`internal.is_allowed_result_url(text)` (db/migrations/…_result_url_rule.sql) applies the same syntax rule in the
database, so every writer is held to it; this module adds the WHATWG parse and the host allow-list. Whatever the
database refuses, this refuses too (the tests run both on the same vectors), so a webhook accepted here is never
refused when the worker applies it.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import ada_url

# Whitespace, controls, invisible formatting characters, private-use, unassigned and surrogate code points.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


class UrlRefused(ValueError):
    """The URL breaks the rule; the message says which part (it becomes a 422 naming the field)."""


@dataclass(frozen=True)
class ResultUrlPolicy:
    allow_http: bool = False
    max_length: int = 2048
    allowed_hosts: frozenset[str] = frozenset()  # normalized with `normalize_host`; empty: any host
    storage_prefix: str = ""  # Settings.storage_object_url_prefix: this deployment's own object URLs are accepted

    @classmethod
    def build(cls, *, allow_http: bool, max_length: int, allowed_hosts: tuple[str, ...] = (),
              storage_prefix: str = "") -> ResultUrlPolicy:
        return _policy(allow_http, max_length, tuple(allowed_hosts), storage_prefix)

    def check(self, url: str) -> str:
        """Return `url` unchanged when it follows the rule, else raise UrlRefused saying why."""
        if self.storage_prefix and is_storage_object_url(url, self.storage_prefix, self.max_length):
            return url
        if len(url) > self.max_length:
            raise UrlRefused(f"must be at most {self.max_length} characters (RESULT_URL_MAX_LENGTH)")
        if "\\" in url or any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in url):
            raise UrlRefused("must not contain whitespace, control characters or backslashes")
        scheme, separator, rest = url.partition("://")
        if not separator or scheme.lower() not in (("https", "http") if self.allow_http else ("https",)):
            raise UrlRefused("must be an http or https URL" if self.allow_http else "must be an https URL")
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "@" in authority:
            raise UrlRefused("must not contain credentials (user@host)")
        if not authority or authority.startswith(":"):
            raise UrlRefused("must name a host (scheme://host/path)")
        try:
            hostname = ada_url.parse_url(url)["hostname"]
        except ValueError as exc:
            raise UrlRefused("is not a valid URL") from exc
        if self.allowed_hosts and normalize_host(hostname) not in self.allowed_hosts:
            raise UrlRefused(f"host {hostname!r} is not in WEBHOOK_MASK_URL_HOSTS")
        return url


def normalize_host(host: str) -> str:
    """A host as a browser compares it: WHATWG-parsed (lower case, IDNA, IPv4 forms), without a trailing dot."""
    try:
        return ada_url.parse_url(f"https://{host}/")["hostname"].rstrip(".")
    except ValueError:
        return host.lower().rstrip(".")


STORAGE_OBJECT_REST = re.compile(r"^[A-Za-z0-9_!.*'()&$@=;:+,-]{1,100}/[^?#]+$")
DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")


def is_storage_object_url(url: str, prefix: str, max_length: int) -> bool:
    """Exactly this deployment's authenticated storage object URL, `<scheme>:` + `prefix` + `<bucket>/<path>`
    (http or https; the same rule as internal.is_storage_object_url in the database)."""
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in ("http", "https") or len(url) > max_length:
        return False
    if rest[:len(prefix)].lower() != prefix.lower():
        return False
    tail = rest[len(prefix):]
    if not STORAGE_OBJECT_REST.match(tail) or DOT_SEGMENT.search(tail) or "//" in tail or tail.endswith("/"):
        return False
    return not ("\\" in url or any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in url))


@functools.lru_cache(maxsize=32)
def _policy(allow_http: bool, max_length: int, allowed_hosts: tuple[str, ...], storage_prefix: str = "") -> ResultUrlPolicy:
    return ResultUrlPolicy(allow_http, max_length, frozenset(normalize_host(h) for h in allowed_hosts if h),
                           storage_prefix)
