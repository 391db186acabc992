"""/rest/v1 — PostgREST's dialect as the Supabase clients use it, over the schemas of `REST_SCHEMAS`, under RLS.

Where new code goes: parsing a header or parameter in `request.py`, shaping an answer in `response.py`, a route in
`views.py`, an error shape or status in `errors.py`; SQL composition in `db/rest/builder.py`, the URL grammar in
`db/rest/grammar.py`. The grammar, what is left out and the error mapping are in docs/REST.md.
"""
from __future__ import annotations

from api.rest.views import bp

__all__ = ["bp"]
