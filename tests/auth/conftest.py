"""Fixtures for /auth/v1: raw GoTrue-wire helpers, in-process auth operations, and live APIs with strict limits."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.auth.passwords import PasswordHasher
from api.auth.service import AuthContext
from tests.support.auth import GoTrue, start_api
from tests.support.oidc import OidcProvider, start_provider_api
from tests.support.processes import ApiProcess


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


@pytest.fixture(scope="module")
def strict_api(settings) -> Iterator[ApiProcess]:
    """Tight limits in a 2 s window; TRUSTED_PROXIES left at its default (none)."""
    server = start_api(settings, auth_rate_limit_sign_in=4, auth_rate_limit_refresh=3, auth_rate_limit_user=3,
                       auth_rate_limit_window_seconds=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reuse_api(settings) -> Iterator[ApiProcess]:
    """No refresh-token reuse interval: any replay outside the parent exception revokes the session."""
    server = start_api(settings, auth_refresh_reuse_interval_seconds=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcProvider]:
    """A local OpenID provider playing Google."""
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def apple_oidc() -> Iterator[OidcProvider]:
    provider = OidcProvider(client_ids=("com.example.app",), client_secret="").start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def google_api(settings, oidc, apple_oidc) -> Iterator[ApiProcess]:
    """`segbase api` with Google and Apple sign-in against the local providers."""
    server = start_provider_api(settings, oidc, apple_oidc)
    yield server
    server.stop()


@pytest.fixture
def google(google_api, anon_key) -> Iterator[GoTrue]:
    client = GoTrue(google_api.url, anon_key)
    yield client
    client.close()
