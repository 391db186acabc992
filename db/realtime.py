"""Realtime's database reads beyond the publication's catalog: which subscribers' RLS lets them see a changed row."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from db.uow import Caller, unit_of_work


def visible_to(engine: Engine, schema: str, table: str, pk: dict[str, Any], callers: list[Caller]) -> set[int]:
    """Positions in `callers` of those whose RLS lets them SELECT the row with primary key `pk`: one round trip
    (internal.realtime_visible_to switches role and claims per caller, as Supabase's realtime.apply_rls)."""
    identities = json.dumps([{"role": caller.role, "claims": caller.claims} for caller in callers])
    with unit_of_work(engine, Caller.service()) as uow:
        positions = uow.execute(
            "select internal.realtime_visible_to(format('%I.%I', cast(:schema as text), cast(:table as text))::regclass, "
            "cast(:pk as jsonb), cast(:callers as jsonb))",
            {"schema": schema, "table": table, "pk": json.dumps(pk), "callers": identities}).scalar()
    return set(positions or ())
