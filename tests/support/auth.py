"""Auth helpers: a GoTrue wire client and API processes with their own auth settings."""
from __future__ import annotations

import uuid

import httpx

from tests.support.database import make_test_settings
from tests.support.processes import ApiProcess

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


def start_api(settings, **overrides) -> ApiProcess:
    """Another `segbase api` on the session's database, in its own Redis namespace, with `overrides`."""
    instance = f"{settings.instance_id}x{uuid.uuid4().hex[:4]}"
    return ApiProcess(make_test_settings(settings.database_url, instance, **overrides)).start()
