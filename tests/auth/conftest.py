"""Fixtures for /auth/v1: raw GoTrue-wire helpers, in-process auth operations, and live APIs with strict limits."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.auth.passwords import PasswordHasher
from api.auth.service import AuthContext
from tests.conftest import make_test_settings
from tests.processes import ApiProcess

API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}@example.com"


class GoTrue:
    """Raw requests as the clients send them (apikey + Bearer apikey + X-Supabase-Api-Version)."""

    def __init__(self, url: str, apikey: str) -> None:
        self.url = f"{url}/auth/v1"
        self.apikey = apikey
        self.http = httpx.Client(timeout=15)

    def headers(self, bearer: str | None = None, **extra: str) -> dict[str, str]:
        return {"apikey": self.apikey, "Authorization": f"Bearer {bearer or self.apikey}", **API_VERSION, **extra}

    def post(self, path: str, body=None, *, bearer: str | None = None, **kwargs) -> httpx.Response:
        headers = {**self.headers(bearer), **kwargs.pop("headers", {})}
        if body is None:
            return self.http.post(self.url + path, headers=headers, **kwargs)
        return self.http.post(self.url + path, json=body, headers=headers, **kwargs)

    def signup(self, email: str | None = None, password: str = PASSWORD, **body) -> httpx.Response:
        return self.post("/signup", {"email": email or new_email(), "password": password, **body})

    def password_grant(self, email: str, password: str = PASSWORD, **kwargs) -> httpx.Response:
        return self.post("/token?grant_type=password", {"email": email, "password": password}, **kwargs)

    def refresh(self, refresh_token: str, **kwargs) -> httpx.Response:
        return self.post("/token?grant_type=refresh_token", {"refresh_token": refresh_token}, **kwargs)

    def user(self, access_token: str) -> httpx.Response:
        return self.http.get(self.url + "/user", headers=self.headers(access_token))

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def gotrue(api_server, anon_key) -> Iterator[GoTrue]:
    client = GoTrue(api_server.url, anon_key)
    yield client
    client.close()


@pytest.fixture(scope="session")
def auth_context(settings, engine) -> Iterator[AuthContext]:
    """The auth operations in-process (a plain thread pool), against the session's database."""
    hasher = PasswordHasher(settings.auth_hash_threads)
    yield AuthContext(settings, engine, hasher)
    hasher.close()


def start_api(settings, **overrides) -> ApiProcess:
    """Another `segbase api` on the session's database, in its own Redis namespace, with `overrides`."""
    instance = f"{settings.instance_id}x{uuid.uuid4().hex[:4]}"
    return ApiProcess(make_test_settings(settings.database_url, instance, **overrides)).start()


@pytest.fixture(scope="module")
def strict_api(settings) -> Iterator[ApiProcess]:
    """Tight limits in a 2 s window; TRUSTED_PROXIES left at its default (none)."""
    server = start_api(settings, auth_rate_limit_sign_in=4, auth_rate_limit_refresh=3,
                       auth_rate_limit_window_seconds=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reuse_api(settings) -> Iterator[ApiProcess]:
    """No refresh-token reuse interval: any replay outside the parent exception revokes the session."""
    server = start_api(settings, auth_refresh_reuse_interval_seconds=0)
    yield server
    server.stop()
