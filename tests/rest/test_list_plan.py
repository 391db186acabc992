"""The list clients make most (a user's 20 latest results) stays index-backed under RLS on a
data set of 100k results for 1k users, with no planner settings changed. Its own database, so the bulk rows do
not leak into other tests."""
from __future__ import annotations

import json

import psycopg
import pytest

from db.migrate import migrate
from db.rest import builder
from db.rest.catalog import load_catalog
from db.urls import authenticator_libpq_url, libpq_url
from tests.support.bulk import bulk_user_ids, load_results
from tests.support.database import create_database, drop_database, make_test_settings

USERS, PER_USER = 1000, 100
INDEX = "segmentation_results_user_id_created_at_idx"


@pytest.fixture(scope="module")
def bulk_settings(run_id):
    name = f"segbase_t_{run_id}_bulk"
    url = create_database(name)
    try:
        settings = make_test_settings(url, f"t{run_id}b")
        migrate(settings, log=lambda *_: None)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            load_results(conn, users=USERS, per_user=PER_USER, tag="plan")
        yield settings
    finally:
        drop_database(name)


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


@pytest.mark.parametrize("order", ["created_at.desc", "created_at.desc.nullslast"])
def test_latest_20_results_use_the_index_under_rls(bulk_settings, order) -> None:
    with psycopg.connect(authenticator_libpq_url(bulk_settings)) as conn:
        catalog = load_catalog(conn)
        conn.rollback()
        statement = builder.read_query(catalog, "segmentation_results",
                                       [("select", "*"), ("order", order), ("limit", "20")])
    with psycopg.connect(libpq_url(bulk_settings.database_url)) as owner:
        total = owner.execute("select count(*), count(distinct user_id) from public.segmentation_results").fetchone()
        assert total[0] >= USERS * PER_USER and total[1] >= USERS
        user_id = bulk_user_ids(owner, "plan", 1)[0]
    with psycopg.connect(authenticator_libpq_url(bulk_settings)) as conn:
        with conn.transaction():
            conn.execute("select set_config('role', 'authenticated', true), "
                         "set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"sub": user_id, "role": "authenticated"}),))
            _total, rows, body = conn.execute(statement.query, statement.params).fetchone()
            assert rows == 20 and all(r["user_id"] == user_id for r in json.loads(body))
            explain = conn.execute(psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + statement.query,
                                   statement.params).fetchone()[0]
    nodes = plan_nodes(explain[0]["Plan"])
    scans = [n for n in nodes if n.get("Relation Name") == "segmentation_results"]
    assert scans and all(n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") for n in scans), nodes
    assert any(n.get("Index Name") == INDEX for n in nodes), nodes
    # the index order serves ORDER BY directly: no sort of the user's rows
    assert not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes), nodes
