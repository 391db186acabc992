"""The console's actions as SQL functions, called the way the console calls them (service_role units of work):
each change commits together with its audit row or not at all, and repeating an action changes nothing."""
from __future__ import annotations

import uuid

import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.exc import DBAPIError

from db import console as console_db
from db.uow import Caller, unit_of_work
from tests.support.console import audit_rows, make_operator
from tests.support.db import sqlstate, user_caller
from tests.support.factories import create_user
from tests.support.pipeline import stop_all, submit_results
from tests.support.processes import SegbaseProcess, wait_for


def service(engine):
    return unit_of_work(engine, Caller.service())


def refused(engine, action) -> console_db.ConsoleActionError:
    with pytest.raises(DBAPIError) as raised:
        with service(engine) as uow:
            action(uow)
    error = console_db.refusal(raised.value)
    assert error is not None, raised.value
    return error


@pytest.fixture
def operator(settings, engine):
    return make_operator(settings, engine)


def balance(owner_conn, user_id: str) -> int:
    return owner_conn.execute("select credits from public.users_profile where id = %s", (user_id,)).fetchone()[0]


def test_a_grant_changes_the_balance_and_writes_the_grant_and_the_audit_row(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=5)
    with service(engine) as uow:
        change = console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id, amount=20,
                                          reason="refund for a failed batch")
    assert (change.credits, change.reserved) == (25, 0) and balance(owner_conn, user.id) == 25
    [audit] = audit_rows(owner_conn, user.id)
    assert audit["action"] == "credits.grant" and audit["operator_id"] == operator.id and audit["actor"] == "console"
    assert audit["before"] == {"credits": 5, "reserved": 0}
    assert audit["after"]["credits"] == 25 and audit["after"]["grant_id"] == change.grant_id
    assert audit["reason"] == "refund for a failed batch"


def test_the_user_reads_their_own_grants_and_no_one_elses(settings, engine, operator):
    user, other = create_user(settings, credits=0), create_user(settings, credits=0)
    with service(engine) as uow:
        console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id, amount=3, reason="welcome")
        console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=other.id, amount=4, reason="welcome")
    with unit_of_work(engine, user_caller(user.id)) as uow:
        rows = uow.execute("select user_id::text, amount, reason, credits_after from public.credit_grants").all()
    assert [tuple(row) for row in rows] == [(user.id, 3, "welcome", 3)]
    with unit_of_work(engine, user_caller(user.id)) as uow, pytest.raises(DBAPIError) as raised:
        uow.execute("insert into public.credit_grants (user_id, amount, reason, credits_after) "
                    "values (:u, 100, 'self-service', 100)", {"u": user.id})
    assert sqlstate(raised.value) == "42501"


def test_a_revocation_cannot_take_available_credits_below_zero(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=10)
    submit_results(engine, user, 4)  # 4 credits reserved by jobs in flight
    error = refused(engine, lambda uow: console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id,
                                                                 amount=-7, reason="chargeback"))
    assert error.code == "insufficient_credits" and "at most 6 can be revoked" in error.message
    assert balance(owner_conn, user.id) == 10 and audit_rows(owner_conn, user.id) == []
    assert owner_conn.execute("select count(*) from public.credit_grants where user_id = %s",
                              (user.id,)).fetchone()[0] == 0
    with service(engine) as uow:
        change = console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id, amount=-6,
                                          reason="chargeback")
    assert (change.credits, change.reserved) == (4, 4)
    assert audit_rows(owner_conn, user.id)[0]["action"] == "credits.revoke"


@pytest.mark.parametrize(("amount", "reason", "code"), [
    (0, "nothing", "invalid_amount"),
    (5, "   ", "reason_required"),
    (2_147_483_647, "too much", "invalid_amount"),
])
def test_bad_grants_are_refused_by_name(settings, engine, operator, amount, reason, code):
    user = create_user(settings, credits=1)
    error = refused(engine, lambda uow: console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id,
                                                                 amount=amount, reason=reason))
    assert error.code == code


def test_only_a_current_operator_can_act(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=1)
    not_an_operator = create_user(settings)
    error = refused(engine, lambda uow: console_db.grant_credits(uow=uow, operator_id=not_an_operator.id,
                                                                 user_id=user.id, amount=5, reason="x"))
    assert error.code == "not_operator" and balance(owner_conn, user.id) == 1
    with service(engine) as uow:
        console_db.set_operator_role(uow=uow, email=operator.email, operator=False)
    error = refused(engine, lambda uow: console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id,
                                                                 amount=5, reason="x"))
    assert error.code == "not_operator"


def test_operator_role_changes_are_audited_as_the_cli_and_idempotent(settings, engine, owner_conn):
    user = create_user(settings, email=f"Op-{uuid.uuid4().hex[:8]}@example.com")
    with service(engine) as uow:
        first = console_db.set_operator_role(uow=uow, email=user.email.upper(), operator=True)
        again = console_db.set_operator_role(uow=uow, email=user.email, operator=True)
        assert console_db.current_operator(uow=uow, user_id=user.id) is not None
    assert first.changed and not again.changed and first.user_id == user.id
    [audit] = audit_rows(owner_conn, user.id)
    assert (audit["actor"], audit["action"], audit["operator_id"]) == ("cli", "operator.grant", None)
    error = refused(engine, lambda uow: console_db.set_operator_role(uow=uow, email="nobody@example.com",
                                                                     operator=True))
    assert error.code == "user_not_found"


def insert_event(owner_conn, result_id: str, *, state: str, reason: str | None = None, attempts: int = 0) -> str:
    finished = "now()" if state != "received" else "null"
    return str(owner_conn.execute(
        "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, state, reason, "
        f"attempts, finished_at) values (%s, %s, 'done', %s, %s, %s, %s, {finished}) returning id",
        (f"test:{uuid.uuid4()}", result_id, Jsonb({"mask_url": "https://cdn.example/m.png"}), state, reason,
         attempts)).fetchone()[0])


def test_replay_moves_a_rejected_event_back_and_keeps_its_outcome_in_the_audit(settings, engine, owner_conn,
                                                                               operator):
    event_id = insert_event(owner_conn, str(uuid.uuid4()), state="rejected", reason="poison: gave up", attempts=6)
    with service(engine) as uow:
        first = console_db.replay_event(uow=uow, operator_id=operator.id, event_id=event_id)
    with service(engine) as uow:
        second = console_db.replay_event(uow=uow, operator_id=operator.id, event_id=event_id)
    assert (first.replayed, first.state) == (True, "received")
    assert (second.replayed, second.state) == (False, "received")
    state, reason, attempts, enqueued = owner_conn.execute(
        "select state, reason, attempts, enqueued_at is not null from internal.webhook_inbox where id = %s",
        (event_id,)).fetchone()
    assert (state, reason, attempts, enqueued) == ("received", None, 0, True)
    [audit] = audit_rows(owner_conn, event_id)
    assert audit["action"] == "webhook.replay"
    assert audit["before"]["state"] == "rejected" and audit["before"]["reason"] == "poison: gave up"
    assert audit["before"]["attempts"] == 6


@pytest.mark.parametrize("state", ["applied", "received", "duplicate"])
def test_replaying_an_event_that_is_not_rejected_changes_nothing(settings, engine, owner_conn, operator, state):
    event_id = insert_event(owner_conn, str(uuid.uuid4()), state=state)
    before = owner_conn.execute("select to_jsonb(i) from internal.webhook_inbox i where id = %s",
                                (event_id,)).fetchone()[0]
    with service(engine) as uow:
        outcome = console_db.replay_event(uow=uow, operator_id=operator.id, event_id=event_id)
    after = owner_conn.execute("select to_jsonb(i) from internal.webhook_inbox i where id = %s",
                               (event_id,)).fetchone()[0]
    assert (outcome.replayed, outcome.state) == (False, state)
    assert after == before and audit_rows(owner_conn, event_id) == []


def test_bulk_replay_takes_the_rejected_events_of_the_window_up_to_the_limit(settings, engine, owner_conn, operator):
    marker = str(uuid.uuid4())
    rejected = [insert_event(owner_conn, marker, state="rejected", reason="unknown result") for _ in range(3)]
    applied = insert_event(owner_conn, marker, state="applied")
    owner_conn.execute("update internal.webhook_inbox set received_at = now() - interval '10 days' "
                       "where result_id = %s", (marker,))
    window = owner_conn.execute("select now() - interval '11 days', now() - interval '9 days'").fetchone()
    with service(engine) as uow:
        first = console_db.replay_rejected(uow=uow, operator_id=operator.id, received_from=window[0],
                                           received_to=window[1], limit=2)
    with service(engine) as uow:
        rest = console_db.replay_rejected(uow=uow, operator_id=operator.id, received_from=window[0],
                                          received_to=window[1], limit=10)
    assert len(first) == 2 and set(first) | set(rest) == set(rejected) and not set(first) & set(rest)
    assert audit_rows(owner_conn, applied) == []


def test_cancel_finishes_an_unfinished_result_and_releases_its_reservation(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=3)
    [result_id] = submit_results(engine, user, 1)
    with service(engine) as uow:
        assert console_db.cancel_result(uow=uow, operator_id=operator.id, result_id=result_id, reason="stuck")
    with service(engine) as uow:
        assert not console_db.cancel_result(uow=uow, operator_id=operator.id, result_id=result_id, reason="again")
        summary = console_db.get_user(uow=uow, user_id=user.id)
    status, error = owner_conn.execute("select status::text, metadata ->> 'error' from public.segmentation_results "
                                       "where id = %s", (result_id,)).fetchone()
    assert (status, error) == ("error", "cancelled")
    # Through dispatch's own cancel: the job is finished as cancelled, so no attempt or lease starts after it.
    assert owner_conn.execute("select state, outcome from internal.dispatch_jobs where result_id = %s",
                              (result_id,)).fetchone() == ("finished", "cancelled")
    assert summary["reserved"] == 0 and summary["credits"] == 3  # nothing charged
    assert [row["action"] for row in audit_rows(owner_conn, result_id)] == ["result.cancel"]


def test_a_ban_revokes_every_session_and_an_unban_lifts_it(settings, engine, owner_conn, operator):
    user = create_user(settings)
    with service(engine) as uow:
        ban = console_db.set_ban(uow=uow, operator_id=operator.id, user_id=user.id, banned=True, reason="abuse")
    with service(engine) as uow:
        again = console_db.set_ban(uow=uow, operator_id=operator.id, user_id=user.id, banned=True, reason="abuse")
        assert console_db.get_user(uow=uow, user_id=user.id)["banned"]
    assert ban.changed and ban.revoked_sessions == [user.session_id] and not again.changed
    assert owner_conn.execute("select count(*) from auth.sessions where user_id = %s", (user.id,)).fetchone()[0] == 0
    with service(engine) as uow:
        assert console_db.set_ban(uow=uow, operator_id=operator.id, user_id=user.id, banned=False,
                                  reason="appeal").changed
        assert not console_db.get_user(uow=uow, user_id=user.id)["banned"]
    assert [row["action"] for row in audit_rows(owner_conn, user.id)] == ["user.ban", "user.unban"]
    error = refused(engine, lambda uow: console_db.set_ban(uow=uow, operator_id=operator.id, user_id=operator.id,
                                                           banned=True, reason="oops"))
    assert error.code == "self_ban"


def test_a_banned_operator_is_no_operator(settings, engine, owner_conn, operator):
    other_operator = make_operator(settings, engine)
    with service(engine) as uow:
        console_db.set_ban(uow=uow, operator_id=other_operator.id, user_id=operator.id, banned=True, reason="left")
        assert console_db.current_operator(uow=uow, user_id=operator.id) is None


def test_the_audit_log_is_append_only_even_for_the_owner(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=0)
    with service(engine) as uow:
        console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=user.id, amount=1, reason="x")
    for statement in ("update internal.operator_audit set reason = 'edited' where target_id = %s",
                      "delete from internal.operator_audit where target_id = %s"):
        with pytest.raises(Exception) as raised:
            owner_conn.execute(statement, (user.id,))
        assert "never changed" in str(raised.value)
    with service(engine) as uow, pytest.raises(DBAPIError) as raised:
        uow.execute("insert into internal.operator_audit (actor, action, target_kind) values ('cli', 'forged', 'x')")
    assert sqlstate(raised.value) == "42501"


def test_retrying_a_failed_dispatch_resubmits_the_job_and_is_audited(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=5)
    [result_id] = submit_results(engine, user, 1)
    owner_conn.execute("select internal.fail_dispatch_job(%s, 'dispatch_failed', 'HTTP 500 from the backend')",
                       (result_id,))
    with service(engine) as uow:
        [failed] = [row for row in console_db.failed_dispatches(uow=uow) if row["id"] == result_id]
        assert failed["dispatch_retryable"] and failed["dispatch_error"] == "HTTP 500 from the backend"
        retry = console_db.retry_dispatch(uow=uow, operator_id=operator.id, result_id=result_id)
    assert retry.action == "resubmitted" and retry.job_id != result_id
    owner, status, retry_of = owner_conn.execute(
        "select user_id::text, status::text, metadata ->> 'retry_of' from public.segmentation_results where id = %s",
        (retry.job_id,)).fetchone()
    assert (owner, status, retry_of) == (user.id, "pending", result_id)
    [audit] = audit_rows(owner_conn, result_id)
    assert audit["action"] == "dispatch.retry" and audit["after"]["job_id"] == retry.job_id


def test_a_job_waiting_for_its_next_attempt_becomes_due_now(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=5)
    [result_id] = submit_results(engine, user, 1)
    owner_conn.execute("update internal.dispatch_jobs set due_at = now() + interval '1 hour', attempts = 3 "
                       "where result_id = %s", (result_id,))
    with service(engine) as uow:
        retry = console_db.retry_dispatch(uow=uow, operator_id=operator.id, result_id=result_id)
    assert (retry.action, retry.job_id) == ("due_now", result_id)
    due_now, attempts = owner_conn.execute("select due_at <= clock_timestamp(), attempts from internal.dispatch_jobs "
                                           "where result_id = %s", (result_id,)).fetchone()
    assert due_now and attempts == 0


def test_a_finished_job_is_not_retried_and_nothing_is_audited(settings, engine, owner_conn, operator):
    user = create_user(settings, credits=5)
    [result_id] = submit_results(engine, user, 1)
    with service(engine) as uow:
        console_db.cancel_result(uow=uow, operator_id=operator.id, result_id=result_id, reason="x")
    with service(engine) as uow:
        assert console_db.retry_dispatch(uow=uow, operator_id=operator.id, result_id=result_id).action == \
            "not_retryable"
    assert [row["action"] for row in audit_rows(owner_conn, result_id)] == ["result.cancel"]


def test_reenabling_dispatch_is_audited_with_the_endpoints_earlier_state(settings, engine, owner_conn, operator):
    owner_conn.execute("update internal.dispatch_endpoint set enabled = false, disabled_at = now(), "
                       "disabled_reason = '410 Gone from the backend'")
    with service(engine) as uow:
        assert console_db.reenable_dispatch(uow=uow, operator_id=operator.id)
    assert owner_conn.execute("select enabled from internal.dispatch_endpoint").fetchone()[0] is True
    audit = owner_conn.execute("select before, after from internal.operator_audit where action = 'dispatch.enable' "
                               "order by id desc limit 1").fetchone()
    assert audit[0]["enabled"] is False and audit[0]["disabled_reason"] == "410 Gone from the backend"
    assert audit[1] == {"enabled": True}


def test_the_overview_sees_a_running_relay(settings, engine):
    """The console tells a live relay by its lock connection (workers/relay.py names it segbase-relay-lock)."""
    relay = SegbaseProcess(settings, "relay", name="console-relay").start()
    try:
        def active() -> bool:
            with service(engine) as uow:
                return console_db.relay_active(uow=uow)

        wait_for(active, timeout=60, interval=0.2, message="the console to see the relay")
    finally:
        stop_all(relay)
