"""The fuzz stack: a database and an API process of its own, and nothing else — no worker, relay or beat, so no
row changes behind a request's back and "a refused request changed nothing" can be checked exactly."""
from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from api.tokens import api_key
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.factories import create_user
from tests.support.fuzz import Identities, fingerprint
from tests.support.processes import ApiProcess
from tests.support.rest import seed


class FuzzStack:
    def __init__(self, settings, api: ApiProcess, identities: Identities) -> None:
        self.settings = settings
        self.api = api
        self.identities = identities
        self.conn = psycopg.connect(libpq_url(settings.database_url), autocommit=True)
        self.last_fingerprint: dict[str, str] | None = None

    def fingerprint(self) -> dict[str, str]:
        return fingerprint(self.conn)


@pytest.fixture(scope="session")
def fuzz_stack(run_id: str) -> Iterator[FuzzStack]:
    name = f"segbase_t_{run_id}_fuzz"
    url = create_database(name)
    settings = make_test_settings(url, f"t{run_id}fz")
    migrate_serialised(settings)
    user = create_user(settings, credits=1000)
    seeded = seed(settings, user, results=4)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public' order by 1")]
        functions = [row[0] for row in conn.execute(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'public' order by 1")]
    identities = Identities(anon_key=api_key(settings, "anon"), service_key=api_key(settings, "service_role"),
                            user_token=user.access_token, webhook_key=settings.webhook_api_keys[0], tables=tables,
                            functions=sorted(set(functions)),
                            ids=[user.id, *seeded.projects, *seeded.results])
    api = ApiProcess(settings).start()
    stack = FuzzStack(settings, api, identities)
    yield stack
    stack.conn.close()
    api.stop()
    drop_database(name)
