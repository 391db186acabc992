"""The maintenance queries are served by the indexes made for them (20261124001400): on a table of finished
results with a few in flight, ANALYZEd, with no planner setting changed. Loaded and rolled back in one
transaction, so other tests never see the rows."""
from __future__ import annotations

import json
import re

import pytest

from db.cleanup import DELETE_EXPIRED_RESULTS
from db.reconcile import TIME_OUT_STUCK_RESULTS
from tests.support.factories import create_user


def plan_indexes(node: dict) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= plan_indexes(child)
    return found


@pytest.mark.parametrize(("query", "params", "index"), [
    (TIME_OUT_STUCK_RESULTS, {"timeout": 600, "batch": 100, "dispatch_on": True},
     "segmentation_results_in_flight_updated_at_idx"),
    (DELETE_EXPIRED_RESULTS, {"cursor": "-infinity", "batch": 100}, "segmentation_results_created_at_idx"),
])
def test_maintenance_query_uses_its_index(settings, owner_conn, query, params, index) -> None:
    users = [create_user(settings, credits=10).id for _ in range(4)]
    with owner_conn.transaction(force_rollback=True):
        # `error` results reserve and charge nothing, so the load does not depend on credits.
        owner_conn.execute("""
            insert into public.segmentation_results (user_id, source_image_url, status, created_at, updated_at)
            select (%s::uuid[])[1 + i %% 4], 'https://img.example/' || i, 'error',
                   now() - make_interval(mins => i), now() - make_interval(mins => i)
            from generate_series(1, 5000) as i""", (users,))
        owner_conn.execute("""
            insert into public.segmentation_results (user_id, source_image_url)
            select u, 'https://img.example/pending' from unnest(%s::uuid[]) as u""", (users,))
        owner_conn.execute("analyze public.segmentation_results")
        # The query as the application sends it, its `:name` placeholders bound by psycopg.
        statement = re.sub(r"(?<!:):(\w+)", r"%(\1)s", query.text)
        plan = owner_conn.execute("explain (format json) " + statement, params).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    assert index in plan_indexes(plan[0]["Plan"])
