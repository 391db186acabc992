"""ID-token verification as GoTrue does it (supabase/auth `internal/api/token_oidc.go`, `internal/api/provider/
oidc.go`, go-oidc `verify.go`): the signature against the keys the provider's OpenID discovery document points to,
`iss` equal to the document's issuer, `exp`, `sub`, `aud` one of the configured client IDs, the nonce rule and,
when an access token came along, `at_hash`.

Discovery documents and key sets are cached per process for CACHE_SECONDS (GoTrue's OIDC provider cache is 1 h);
one refresh at a time per document, and when a refresh fails the stale copy keeps serving, so a provider's
hiccup does not stop sign-ins. A token whose `kid` is not in the cached key set triggers one key refresh (keys
rotate), at most every KEY_REFETCH_SECONDS so a stream of forged `kid`s cannot make segbase hammer the provider.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import jwt

from api.auth.oauth.providers import Provider

log = logging.getLogger(__name__)

CACHE_SECONDS = 3600
KEY_REFETCH_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 512 * 1024
# go-oidc's supported algorithms: never `none`, never a shared-secret HMAC.
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")
AT_HASH_DIGESTS = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


class IdTokenErrorName(StrEnum):
    """The `error` of GoTrue's OAuth-shaped ID-token refusals, spelled as GoTrue does (with a space)."""

    INVALID_REQUEST = "invalid request"
    INVALID_NONCE = "invalid nonce"


class IdTokenError(Exception):
    """An ID token that does not pass; `error` and `message` are GoTrue's OAuth-shaped answer."""

    def __init__(self, message: str, error: str = IdTokenErrorName.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class ProviderUnavailable(Exception):
    """The provider's discovery document or keys cannot be fetched and no copy is cached."""


@dataclass
class _Entry:
    document: dict[str, Any] | None = None
    document_at: float = 0.0
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    keyless: list[jwt.PyJWK] = field(default_factory=list)  # keys without `kid`
    keys_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _get_json(url: str) -> dict[str, Any]:
    with httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
        with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return value


class OidcCache:
    """Discovery documents and key sets by discovery URL, shared by the greenlets of one process."""

    def __init__(self, ttl: float = CACHE_SECONDS, key_refetch: float = KEY_REFETCH_SECONDS) -> None:
        self.ttl = ttl
        self.key_refetch = key_refetch
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()

    def _entry(self, url: str) -> _Entry:
        with self._guard:
            return self._entries.setdefault(url, _Entry())

    def document(self, url: str) -> dict[str, Any]:
        """The discovery document, refreshed after `ttl`; the stale copy when the refresh fails."""
        entry = self._entry(url)
        if entry.document is not None and time.monotonic() - entry.document_at < self.ttl:
            return entry.document
        with entry.lock:
            if entry.document is not None and time.monotonic() - entry.document_at < self.ttl:
                return entry.document  # another greenlet refreshed it while this one waited
            try:
                document = _get_json(url)
                if not isinstance(document.get("issuer"), str) or not isinstance(document.get("jwks_uri"), str):
                    raise ValueError("the discovery document lacks issuer or jwks_uri")
            except (httpx.HTTPError, ValueError) as exc:
                if entry.document is None:
                    raise ProviderUnavailable(f"OpenID discovery at {url} failed: {exc}") from exc
                log.warning("oidc_discovery_refresh_failed", extra={"url": url, "error": str(exc)})
                entry.document_at = time.monotonic()  # serve the stale copy for another period, then try again
                return entry.document
            if document.get("jwks_uri") != (entry.document or {}).get("jwks_uri"):
                entry.keys_at = 0.0
            entry.document, entry.document_at = document, time.monotonic()
            return document

    def key(self, url: str, kid: str | None) -> jwt.PyJWK | None:
        """The signing key named `kid` (or the only key when the token names none)."""
        document = self.document(url)
        entry = self._entry(url)
        age = time.monotonic() - entry.keys_at
        found = self._lookup(entry, kid)
        if found is not None and age < self.ttl:
            return found
        if found is None and entry.keys_at and age < self.key_refetch:
            return None  # refetched moments ago: an unknown kid stays unknown
        with entry.lock:
            if time.monotonic() - entry.keys_at >= min(self.key_refetch, self.ttl) or not entry.keys_at:
                try:
                    self._load_keys(entry, document["jwks_uri"])
                except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
                    if not entry.keys_at:
                        raise ProviderUnavailable(f"keys at {document['jwks_uri']} failed: {exc}") from exc
                    log.warning("oidc_keys_refresh_failed", extra={"url": document["jwks_uri"], "error": str(exc)})
                    entry.keys_at = time.monotonic()
            return self._lookup(entry, kid)

    @staticmethod
    def _lookup(entry: _Entry, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return entry.keys.get(kid)
        candidates = entry.keyless or list(entry.keys.values())
        return candidates[0] if len(candidates) == 1 else None

    @staticmethod
    def _load_keys(entry: _Entry, jwks_uri: str) -> None:
        keys: dict[str, jwt.PyJWK] = {}
        keyless: list[jwt.PyJWK] = []
        for raw in _get_json(jwks_uri).get("keys") or []:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(raw)
            except jwt.PyJWKError:
                continue  # a key type this build cannot use; others may still verify
            if raw.get("kid"):
                keys[str(raw["kid"])] = key
            else:
                keyless.append(key)
        entry.keys, entry.keyless, entry.keys_at = keys, keyless, time.monotonic()


def _at_hash(access_token: str, algorithm: str) -> str:
    digest = AT_HASH_DIGESTS.get(algorithm[-3:], hashlib.sha256)(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def verify_id_token(cache: OidcCache, provider: Provider, token: str, *, nonce: str | None = None,
                    access_token: str | None = None, check_nonce: bool = True) -> dict[str, Any]:
    """The token's claims when it passes every check, else IdTokenError (ProviderUnavailable: nothing cached).

    `check_nonce=False` is for tokens segbase fetched itself from the provider's token endpoint (the redirect
    flow), where no client nonce exists."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        log.info("id_token_refused", extra={"provider": provider.name, "reason": str(exc)})
        raise IdTokenError("Bad ID token") from exc
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise IdTokenError("Bad ID token")
    document = cache.document(provider.discovery_url)
    key = cache.key(provider.discovery_url, header.get("kid"))
    if key is None:
        log.info("id_token_refused", extra={"provider": provider.name, "reason": "unknown signing key"})
        raise IdTokenError("Bad ID token")
    issuers = [document["issuer"], *provider.issuer_aliases]
    try:
        claims = jwt.decode(token, key=key, algorithms=[algorithm], issuer=issuers,
                            options={"verify_aud": False, "require": ["exp", "iss"]})
    except jwt.PyJWTError as exc:
        log.info("id_token_refused", extra={"provider": provider.name, "reason": str(exc)})
        raise IdTokenError("Bad ID token") from exc
    if not claims.get("sub"):
        raise IdTokenError("Missing sub claim in id_token")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
    allowed = {client_id for client_id in provider.client_ids if client_id}
    if not allowed.intersection(audiences):
        raise IdTokenError(f"Unacceptable audience in id_token: {audiences}")
    if check_nonce and not provider.skip_nonce_check:
        token_nonce = claims.get("nonce") or None
        if bool(token_nonce) != bool(nonce):
            raise IdTokenError("Passed nonce and nonce in id_token should either both exist or not.")
        if nonce and not hmac.compare_digest(hashlib.sha256(nonce.encode()).hexdigest(), str(token_nonce)):
            raise IdTokenError("Nonces mismatch", error=IdTokenErrorName.INVALID_NONCE)
    if access_token and claims.get("at_hash"):
        if not hmac.compare_digest(_at_hash(access_token, algorithm), str(claims["at_hash"])):
            raise IdTokenError("Bad ID token")
    return claims
