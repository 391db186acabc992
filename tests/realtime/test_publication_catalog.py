"""The one reader of the supabase_realtime publication (db/publication.py), used by join validation and the relay."""
from __future__ import annotations

import uuid

from db.publication import PublicationCatalog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_published_tables_with_types_and_the_columns_each_role_may_not_select(engine):
    catalog = PublicationCatalog(engine)
    results = catalog.shape("public", "segmentation_results")
    assert results is not None
    assert results.columns[0] == {"name": "id", "type": "uuid"}
    assert results.types["user_id"] == "uuid" and results.hidden == {"authenticated": [], "anon": []}
    assert catalog.column_types()["public"]["segmentation_results"] == results.types
    assert catalog.shape("public", "not_published") is None


def test_a_newly_published_table_is_found_without_waiting_for_the_cache(engine, owner_conn):
    clock = Clock()
    catalog = PublicationCatalog(engine, clock=clock)
    table = f"probe_{uuid.uuid4().hex[:8]}"
    catalog.tables()
    owner_conn.execute(f"create table public.{table} (id int primary key, secret text)")
    try:
        owner_conn.execute(f"revoke all on public.{table} from anon, authenticated")  # default privileges grant all
        owner_conn.execute(f"grant select (id) on public.{table} to authenticated")
        owner_conn.execute(f"alter publication supabase_realtime add table public.{table}")
        # Joins (client-chosen names) re-read at most once a second; the relay (captured tables only) at once.
        assert not catalog.reload_after_miss() and table not in catalog.column_types()["public"]
        shape = catalog.shape("public", table)
        assert shape is not None and shape.hidden == {"authenticated": ["secret"], "anon": ["id", "secret"]}
        clock.now += 1.5
        assert catalog.reload_after_miss()
    finally:
        owner_conn.execute(f"alter publication supabase_realtime drop table public.{table}")
        owner_conn.execute(f"drop table public.{table}")
