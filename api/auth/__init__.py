"""/auth/v1: GoTrue-compatible auth (email/password, OAuth and ID-token sign-in, identities, email flows, admin).

Request and response shapes, status codes and error codes are GoTrue's (supabase/auth `internal/api/`), so
supabase-py, supabase-js and supabase-flutter work unchanged. Every request needs an `apikey` (anon or
service_role), as behind Supabase's gateway. The blueprint and its hooks are in api/auth/blueprint.py; thin views
in api/auth/views/; bodies in api/auth/bodies.py, operations in api/auth/service.py, JSON shapes in
api/auth/responses.py, SQL in db/auth.py, access tokens in api/identity.py.
"""
from __future__ import annotations

from api.auth.views import identities, oauth  # noqa: F401  (provider sign-in and identities; routes on bp)
from api.auth.blueprint import bp
from api.auth.views import sessions, user  # noqa: F401  (importing a view module registers its routes on bp)
from api.auth.views import admin, email_flows  # noqa: F401,E402  (the admin API's and email flows' routes)

__all__ = ["bp"]
