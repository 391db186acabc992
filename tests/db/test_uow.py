"""The unit of work's own contract, on real PostgreSQL: the identity is set in the round trip that opens the
transaction, a rolled-back unit leaves nothing and runs no callback, the pool does not ping, and a connection the
server closed is replaced only where nothing can have been written — never after a write."""
from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from db.engine import create_app_engine
from db.uow import Caller, unit_of_work
from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.db import user_caller


@pytest.fixture
def own_engine(settings: Settings):
    """A one-connection engine of the test's own, so a test can kill its backend."""
    engine = create_app_engine(settings, pool_size=1, application_name="segbase-tests-uow")
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with unit_of_work(engine, Caller.service()) as uow:
        return uow.execute("select pg_backend_pid()").scalar_one()


def frontend_messages(engine: Engine, body) -> list[str]:
    """The protocol messages the client sent while `body(engine)` ran (libpq's trace of the pooled connection)."""
    with tempfile.NamedTemporaryFile("w+", suffix=".trace") as trace:
        with engine.connect() as connection:
            connection.connection.driver_connection.pgconn.trace(trace.fileno())
        body(engine)
        with engine.connect() as connection:
            connection.connection.driver_connection.pgconn.untrace()
        lines = Path(trace.name).read_text().splitlines()
    return [line.split("\t")[3] for line in lines if line.split("\t")[1:2] == ["F"]]


def test_the_identity_is_set_as_postgrest_does_including_quotes_and_percent_signs(engine) -> None:
    caller = Caller("authenticated", {"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated",
                                      "note": "it's 100% \"quoted\" \\ and ünïcode"})
    with unit_of_work(engine, caller) as uow:
        row = uow.execute("select current_user, auth.uid()::text, current_setting('request.jwt.claims')::jsonb, "
                          "current_setting('role')").one()
    assert row[0] == "authenticated" and row[1] == caller.claims["sub"]
    assert row[2] == caller.claims and row[3] == "authenticated"
    # SET LOCAL: the next unit of work on the same pooled connection starts as authenticator again.
    with unit_of_work(engine, Caller.anonymous()) as uow:
        assert uow.execute("select current_user").scalar_one() == "anon"


def test_an_unknown_role_is_refused_before_anything_is_sent(engine) -> None:
    with pytest.raises(ValueError, match="unknown database role"):
        with unit_of_work(engine, Caller("postgres", {})):  # type: ignore[arg-type]
            pass


def test_a_unit_of_work_costs_three_round_trips_and_no_ping(own_engine) -> None:
    backend_pid(own_engine)  # the pool's connection exists

    def one_unit(engine: Engine) -> None:
        with unit_of_work(engine, user_caller("00000000-0000-4000-8000-000000000002")) as uow:
            uow.execute("select count(*) from public.projects").scalar_one()

    sent = frontend_messages(own_engine, one_unit)
    # BEGIN + identity as one simple query, the statement, COMMIT — no ping, no separate BEGIN.
    assert [m for m in sent if m in ("Query", "Sync")] == ["Query", "Query", "Query"], sent


def test_a_pipelined_unit_sends_its_statements_and_commit_in_one_round_trip(own_engine) -> None:
    backend_pid(own_engine)
    cursors = []

    def one_unit(engine: Engine) -> None:
        with unit_of_work(engine, Caller.service(), pipelined=True) as uow:
            for key in ("uow-test-pipelined-1", "uow-test-pipelined-2"):
                cursor = uow.driver_cursor()
                cursor.execute("insert into internal.webhook_inbox (idempotency_key, result_id, event_status, "
                               "payload) values (%s, gen_random_uuid(), 'done', '{}') returning idempotency_key",
                               (key,))
                cursors.append(cursor)
            uow.become(user_caller("00000000-0000-4000-8000-000000000003"))
            cursor = uow.driver_cursor()
            cursor.execute("select current_user::text, auth.uid()::text")
            cursors.append(cursor)

    sent = frontend_messages(own_engine, one_unit)
    # BEGIN + identity as one simple query; then every statement and the COMMIT, and one Sync for them all.
    assert [m for m in sent if m in ("Query", "Sync")] == ["Query", "Sync"], sent
    assert [c.fetchone() for c in cursors] == [("uow-test-pipelined-1",), ("uow-test-pipelined-2",),
                                               ("authenticated", "00000000-0000-4000-8000-000000000003")]
    with unit_of_work(own_engine, Caller.service()) as uow:  # committed, and the connection went back clean
        assert uow.execute("select count(*) from internal.webhook_inbox "
                           "where idempotency_key like 'uow-test-pipelined-%'").scalar_one() == 2
        assert uow.execute("select current_user").scalar_one() == "service_role"


def test_a_pipelined_unit_that_fails_leaves_nothing(own_engine) -> None:
    ran: list[str] = []
    with pytest.raises(psycopg.errors.DivisionByZero):
        with unit_of_work(own_engine, Caller.service(), pipelined=True) as uow:
            uow.driver_cursor().execute("insert into internal.webhook_inbox (idempotency_key, result_id, "
                                        "event_status, payload) values ('uow-test-pipelined-failed', "
                                        "gen_random_uuid(), 'done', '{}')")
            uow.driver_cursor().execute("select 1 / 0")
            uow.on_commit(lambda: ran.append("callback"))
    assert ran == []
    with unit_of_work(own_engine, Caller.service()) as uow:
        assert uow.execute("select count(*) from internal.webhook_inbox "
                           "where idempotency_key = 'uow-test-pipelined-failed'").scalar_one() == 0


def test_pipelined_units_that_fail_again_and_again_leave_the_connection_usable(own_engine) -> None:
    """psycopg prepares a statement it has run a few times; in a pipeline whose transaction fails, the statements
    after the failure are skipped by the server, so the connection's prepared-statement cache must not count on
    them (else the next run of the statement asks for one that does not exist)."""
    def unit(divisor: int) -> list:
        cursors = []
        with unit_of_work(own_engine, Caller.service(), pipelined=True) as uow:
            for statement in ("select 1 / %s", "select 2 / %s", "select 3 / %s"):
                cursor = uow.driver_cursor()
                cursor.execute(statement, (divisor,))
                cursors.append(cursor)
        return [cursor.fetchone()[0] for cursor in cursors]

    for divisor in (1, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1):
        if divisor:
            assert unit(divisor) == [1, 2, 3]
        else:
            with pytest.raises(psycopg.errors.DivisionByZero):
                unit(divisor)
    with unit_of_work(own_engine, Caller.service()) as uow:  # and the plain path still prepares as it likes
        for _ in range(8):
            assert uow.driver_cursor().execute("select 2 / %s", (1,)).fetchone()[0] == 2


def test_a_failed_unit_leaves_nothing_and_runs_no_callback(engine, settings) -> None:
    ran: list[str] = []
    with pytest.raises(DBAPIError):
        with unit_of_work(engine, Caller.service()) as uow:
            uow.execute("insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload) "
                        "values ('uow-test-rolled-back', gen_random_uuid(), 'done', '{}')")
            uow.on_commit(lambda: ran.append("callback"))
            uow.execute("select 1 / 0")
    assert ran == []
    with unit_of_work(engine, Caller.service()) as uow:  # the connection went back clean
        assert uow.execute("select count(*) from internal.webhook_inbox "
                           "where idempotency_key = 'uow-test-rolled-back'").scalar_one() == 0
        assert uow.execute("select current_user").scalar_one() == "service_role"


def test_callbacks_run_after_the_commit_is_visible_to_others(engine, settings) -> None:
    seen: list[int] = []
    owner_url = settings.database_url

    def count_from_another_connection() -> None:
        with psycopg.connect(owner_url) as conn:
            seen.append(conn.execute("select count(*) from internal.webhook_inbox "
                                     "where idempotency_key = 'uow-test-committed'").fetchone()[0])

    with unit_of_work(engine, Caller.service()) as uow:
        uow.execute("insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload) "
                    "values ('uow-test-committed', gen_random_uuid(), 'done', '{}')")
        uow.on_commit(count_from_another_connection)
    assert seen == [1]


def kill(settings: Settings, pid: int) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as owner:
        owner.execute("select pg_terminate_backend(%s, 5000)", (pid,))


def test_a_connection_the_server_closed_is_replaced_when_the_transaction_opens(own_engine, settings) -> None:
    old = backend_pid(own_engine)
    kill(settings, old)
    with unit_of_work(own_engine, Caller.service()) as uow:  # the pooled connection is dead: opened on a new one
        assert uow.execute("select pg_backend_pid()").scalar_one() != old


def test_no_retry_once_a_statement_may_have_written(own_engine, settings) -> None:
    key = "uow-test-killed-mid-transaction"
    with pytest.raises(OperationalError):
        with unit_of_work(own_engine, Caller.service()) as uow:
            uow.execute(text("insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload) "
                             "values (:key, gen_random_uuid(), 'done', '{}')"), {"key": key})
            kill(settings, uow.execute("select pg_backend_pid()").scalar_one())
            uow.execute("select 1")  # the connection is gone: the error surfaces, the unit is not replayed
    with unit_of_work(own_engine, Caller.service()) as uow:
        assert uow.execute(text("select count(*) from internal.webhook_inbox where idempotency_key = :key"),
                           {"key": key}).scalar_one() == 0


def test_a_database_that_refuses_connections_fails_fast(settings) -> None:
    down = make_test_settings(settings.database_url.replace(":5432/", ":1/"), settings.instance_id)
    engine = create_app_engine(down, pool_size=1)
    try:
        with pytest.raises(OperationalError):
            with unit_of_work(engine, Caller.service()):
                pass
    finally:
        engine.dispose()
