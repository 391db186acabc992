"""Supabase-style API keys: HS256 JWTs signed with JWT_SECRET carrying only a role (no `aud`), like Supabase's
legacy anon and service_role keys. User access tokens are minted and verified in api/identity.py."""
from __future__ import annotations

from typing import Literal

import jwt

from schemas.settings import Settings

# Fixed claims make the keys a pure function of JWT_SECRET: `segbase status` prints the same keys every time,
# and rotating JWT_SECRET rotates them.
API_KEY_ISSUED_AT = 1_764_000_000  # 2025-11-24
API_KEY_EXPIRES_AT = 4_102_444_800  # 2100-01-01


def api_key(settings: Settings, role: Literal["anon", "service_role"]) -> str:
    """The anon or service_role key for this deployment."""
    claims = {"iss": "segbase", "role": role, "iat": API_KEY_ISSUED_AT, "exp": API_KEY_EXPIRES_AT}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
