"""Fixtures for /rest/v1: a live API, users with real tokens, and rows seeded directly as the owner.

Seed rows are inserted with `session_replication_role = replica` so the other surfaces' triggers (credit
reservation, status machine, outbox) do not shape this fixture data; the tests then go through the API, where
every trigger applies.
"""
from __future__ import annotations

import httpx
import pytest

from tests.support.factories import create_user
from tests.support.rest import Seeded, library_stack, seed


@pytest.fixture(scope="session")
def rest_url(api_server) -> str:
    return f"{api_server.url}/rest/v1"


@pytest.fixture(scope="session")
def alice(settings) -> Seeded:
    return seed(settings, create_user(settings, credits=50, display_name="Alice"), results=5)


@pytest.fixture(scope="session")
def bob(settings) -> Seeded:
    return seed(settings, create_user(settings, credits=5, display_name="Bob"), results=3, prompt_prefix="dog")


@pytest.fixture(scope="session")
def http() -> httpx.Client:
    with httpx.Client(timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def library():
    """A live API over tests/rest/library.sql in a database of its own (schemas public and extra)."""
    with library_stack() as stack:
        yield stack
