"""Fixtures for the dispatch tests: a database of their own (a pull claim takes whatever is due, so no other test's
pending results may sit in the queue), emptied before each test, with the endpoint healthy; users and results
submitted as themselves; owner connections for set-up and inspection."""
from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from db.engine import create_app_engine
from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.processes import ApiProcess, free_port


@pytest.fixture(scope="session")
def dispatch_settings(run_id: str) -> Iterator[Settings]:
    """Settings on the dispatch tests' own database (pull mode; push tests derive their own settings)."""
    name = f"segbase_t_{run_id}_dispatch"
    url = create_database(name)
    # The API's port is chosen now, so the URLs segbase signs (API_EXTERNAL_URL) name the live `dispatch_api`; the
    # API is plain http on loopback, so result URLs may be http.
    test_settings = make_test_settings(url, f"t{run_id}d", dispatch_mode="pull", api_port=free_port(),
                                       result_url_allow_http=True)
    migrate_serialised(test_settings)
    yield test_settings
    drop_database(name)


@pytest.fixture(scope="session")
def dispatch_engine(dispatch_settings: Settings) -> Iterator[Engine]:
    engine = create_app_engine(dispatch_settings, pool_size=3, application_name="segbase-tests-dispatch")
    yield engine
    engine.dispose()


@pytest.fixture
def db(dispatch_settings: Settings) -> Iterator[psycopg.Connection]:
    """An owner connection to the dispatch database (set-up and checks only; owners bypass RLS)."""
    with psycopg.connect(libpq_url(dispatch_settings.database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture(autouse=True)
def empty_queue(dispatch_settings: Settings) -> None:
    """Each test starts with no job waiting or held and a healthy, enabled endpoint."""
    with psycopg.connect(libpq_url(dispatch_settings.database_url), autocommit=True) as conn:
        conn.execute("delete from public.segmentation_results where status in ('pending', 'processing')")
        conn.execute("update internal.dispatch_endpoint set enabled = true, disabled_at = null, "
                     "disabled_reason = null, consecutive_failures = 0, circuit_open_until = null, "
                     "circuit_open_seconds = 0, paused_until = null")


@pytest.fixture(scope="session")
def dispatch_api(dispatch_settings: Settings) -> Iterator[ApiProcess]:
    """A live `segbase api` on the dispatch database, in pull mode."""
    server = ApiProcess(dispatch_settings, port=dispatch_settings.api_port).start()
    yield server
    server.stop()
