"""Fixtures for the operations tests: results of a given age and status, inserted as the database owner (the
insert triggers still run: reservation, charge for `done`, realtime capture), and small helpers to read them."""
from __future__ import annotations

import pytest

from schemas.settings import Settings
from tests.support.factories import TestUser, create_user


@pytest.fixture
def tiered_users(settings: Settings) -> dict[str, TestUser]:
    return {tier: create_user(settings, credits=1000, tier=tier) for tier in ("free", "pro", "enterprise")}
