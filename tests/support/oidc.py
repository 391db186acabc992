"""A small OpenID Connect provider the auth tests run in-process (a real HTTP server on a free port): discovery
document, JWKS, an authorization endpoint that consents at once, and a token endpoint; ID tokens are RS256 JWTs
signed with PyJWT. It plays Google (or Apple) for a `segbase api` whose AUTH_GOOGLE_DISCOVERY_URL points here.

Who signs in at the authorization endpoint is chosen by its `login_hint` (which segbase passes through, as GoTrue
does): `provider.login_hint(claims)` registers the claims and returns the hint.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.database import make_test_settings
from tests.support.processes import ApiProcess, free_port

WEB_CLIENT_ID = "web-client.apps.example.test"
IOS_CLIENT_ID = "ios-client.apps.example.test"
CLIENT_SECRET = "test-client-secret"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class OidcProvider:
    def __init__(self, client_ids: tuple[str, ...] = (WEB_CLIENT_ID, IOS_CLIENT_ID),
                 client_secret: str = CLIENT_SECRET) -> None:
        self.client_ids = client_ids
        self.client_secret = client_secret
        self.keys: dict[str, Any] = {}
        self.kid = self.rotate_key()
        self.logins: dict[str, dict[str, Any]] = {}
        self.default_login: dict[str, Any] | None = None  # who signs in when the request names no login_hint
        self.codes: dict[str, dict[str, Any]] = {}
        self.failing = False  # discovery and JWKS answer 503 while set
        self.fetches = {"discovery": 0, "jwks": 0, "token": 0}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle -----------------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> OidcProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- tokens ----------------------------------------------------------------------------------------------
    def rotate_key(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        return kid

    def id_token(self, *, sub: str | None = None, email: str | None = None, email_verified: bool = True,
                 aud: str | list[str] | None = None, nonce: str | None = None, issuer: str | None = None,
                 expires_in: int = 600, kid: str | None = None, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": issuer or self.issuer, "aud": aud or self.client_ids[0],
                                   "sub": sub or str(uuid.uuid4().int)[:21], "iat": now, "exp": now + expires_in,
                                   "email_verified": email_verified, **claims}
        if email is not None:
            payload["email"] = email
        if nonce is not None:
            payload["nonce"] = nonce
        kid = kid or self.kid
        return jwt.encode(payload, key or self.keys.get(kid) or self.keys[self.kid], algorithm="RS256", headers={"kid": kid})

    def login_hint(self, **claims: Any) -> str:
        hint = uuid.uuid4().hex
        self.logins[hint] = claims
        return hint

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]}

    # --- HTTP ------------------------------------------------------------------------------------------------
    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                if url.path in ("/.well-known/openid-configuration", "/jwks"):
                    provider.fetches["discovery" if url.path != "/jwks" else "jwks"] += 1
                    if provider.failing:
                        return self._json(503, {"error": "unavailable"})
                    return self._json(200, provider.discovery() if url.path != "/jwks" else provider.jwks())
                if url.path == "/authorize":
                    return self._authorize({key: values[0] for key, values in parse_qs(url.query).items()})
                self._json(404, {"error": "not_found"})

            def _authorize(self, query: dict[str, str]) -> None:
                redirect_uri = query.get("redirect_uri", "")
                claims = provider.logins.get(query.get("login_hint", ""), provider.default_login)
                if query.get("client_id") != provider.client_ids[0] or not redirect_uri:
                    return self._json(400, {"error": "invalid_client"})
                if claims is None:
                    params = {"error": "access_denied", "error_description": "The user denied access",
                              "state": query.get("state", "")}
                else:
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"claims": claims, "redirect_uri": redirect_uri,
                                            "scope": query.get("scope", "")}
                    params = {"code": code, "state": query.get("state", "")}
                self.send_response(302)
                self.send_header("Location", f"{redirect_uri}?{urlencode(params)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                if urlsplit(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                provider.fetches["token"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
                if form.get("client_id") != provider.client_ids[0] or form.get("client_secret") != provider.client_secret:
                    return self._json(401, {"error": "invalid_client"})
                with provider.lock:
                    grant = provider.codes.pop(form.get("code", ""), None)
                if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                    return self._json(400, {"error": "invalid_grant"})
                access_token = f"ya29.{secrets.token_urlsafe(16)}"
                self._json(200, {"access_token": access_token, "refresh_token": f"1//{secrets.token_urlsafe(8)}",
                                 "token_type": "Bearer", "expires_in": 3599, "scope": grant["scope"],
                                 "id_token": provider.id_token(**grant["claims"])})

        return Handler


def start_provider_api(settings, google: OidcProvider, apple: OidcProvider | None = None, **overrides):
    """A `segbase api` on the session's database with Google (and Apple) pointed at test providers; its
    API_EXTERNAL_URL is its real address, so the provider's redirect comes back to it."""
    port = free_port()
    values: dict[str, Any] = dict(
        api_external_url=f"http://127.0.0.1:{port}", auth_site_url="http://127.0.0.1:3000",
        auth_redirect_allow_list=["com.example.app://**", "http://app.example.test/*"],
        auth_google_enabled=True, auth_google_client_ids=list(google.client_ids),
        auth_google_client_secret=google.client_secret, auth_google_discovery_url=google.discovery_url)
    if apple is not None:
        values.update(auth_apple_enabled=True, auth_apple_client_ids=list(apple.client_ids),
                      auth_apple_discovery_url=apple.discovery_url)
    values.update(overrides)
    instance = f"{settings.instance_id}o{uuid.uuid4().hex[:4]}"
    return ApiProcess(make_test_settings(settings.database_url, instance, **values), port=port).start()
