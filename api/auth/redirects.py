"""Which `redirect_to` segbase honours: the site itself (AUTH_SITE_URL) or an AUTH_REDIRECT_ALLOW_LIST glob.

GoTrue's rule (supabase/auth `internal/utilities/request.go::IsRedirectURLValid`): same scheme, host and port as
the site URL (the port is ignored for loopback hosts, RFC 8252 §7.3), else a match against an allow-list glob
compiled with `.` and `/` as separators (`*` stays inside one label or path segment, `**` crosses them), matched
without the fragment. Decimal-IP hosts and non-loopback IP literals are refused, and so are http(s) hosts with
unusual characters. segbase adds: a URL with a backslash, whitespace, a control character or user info is refused
(browsers and URL parsers disagree on where such a URL goes), and so are the schemes that run or embed content
(`javascript:`, `data:`, `vbscript:`, `file:`) whatever the allow-list says. Anything refused falls back to the site URL, as
GoTrue does, so a mail or a redirect never carries an address nobody allowed.
"""
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit

from schemas.settings import Settings

DECIMAL_HOST = re.compile(r"^[0-9]+$")
REGULAR_HOST = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})
SEPARATORS = "./"
REFUSED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A gobwas/glob pattern with separators `.` and `/` as a regular expression matching the whole string."""
    out: list[str] = []
    not_separator = "[^" + re.escape(SEPARATORS) + "]"
    i = 0
    depth = 0  # inside {a,b}
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append(not_separator + "*")
                i += 1
            continue
        if char == "?":
            out.append(not_separator)
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + "$", re.DOTALL)


@lru_cache(maxsize=8)
def _allow_list(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(compile_glob(pattern) for pattern in patterns)


def _is_loopback_name(host: str) -> bool:
    host = host.lower()
    return host in LOOPBACK_NAMES or host.endswith(".localhost")


def _has_unsafe_characters(url: str) -> bool:
    return "\\" in url or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url)


def is_allowed_redirect(url: str | None, settings: Settings) -> bool:
    """True when `url` may be redirected to or written into a mail."""
    if not url or _has_unsafe_characters(url):
        return False
    try:
        site = urlsplit(settings.auth_site_url)
        target = urlsplit(url)
        site_port, target_port = site.port, target.port
    except ValueError:
        return False
    if "@" in target.netloc or target.scheme.lower() in REFUSED_SCHEMES:
        return False
    host = target.hostname or ""
    if (host == (site.hostname or "") and target.scheme == site.scheme
            and (target_port == site_port or _is_loopback_name(host))):
        return True
    is_http = target.scheme.lower() in ("http", "https")
    if DECIMAL_HOST.match(host):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if is_http and not REGULAR_HOST.match(host):
        return False
    without_fragment = url.split("#", 1)[0]
    return any(pattern.match(without_fragment) for pattern in _allow_list(tuple(settings.auth_redirect_allow_list)))


def resolve_redirect(requested: str | None, settings: Settings, *, referer: str | None = None) -> str:
    """The redirect to honour: the requested one if allowed, else the Referer if allowed, else the site URL."""
    for candidate in (requested, referer):
        if is_allowed_redirect(candidate, settings):
            return candidate  # type: ignore[return-value]
    return settings.auth_site_url
