"""The dispatch queue's rules, in PostgreSQL: a pending result enqueues its job in the same transaction, done/error
finishes it whatever path wrote it, holds (push attempts, pull leases) are exclusive and expire, cancel and the
queue timeout end the job and release the reservation, and the push releaser obeys the in-flight cap, the circuit
breaker and a 410. Clocks are moved by editing timestamps, never by sleeping."""
from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from db import dispatch
from db.uow import Caller, unit_of_work
from tests.support.dispatch import endpoint, expire_holds, job, make_due, reserved, result, submit
from tests.support.factories import create_user
from tests.support.pipeline import user_caller
from workers.maintenance import time_out_queued_jobs, time_out_stuck_results

PUSH = {"max_in_flight": 16, "hold_seconds": 30, "failure_threshold": 3}
BREAKER = {"failure_threshold": 3, "open_seconds": 30, "max_open_seconds": 600}


def release(engine, max_jobs=100, **overrides):
    with unit_of_work(engine, Caller.service()) as uow:
        return dispatch.release_jobs(uow=uow, max_jobs=max_jobs, **{**PUSH, **overrides})


def begin(engine, attempt):
    with unit_of_work(engine, Caller.service()) as uow:
        return dispatch.begin_attempt(uow=uow, job_id=attempt.job_id, attempt_id=attempt.attempt_id)


def record(engine, attempt, outcome, retry_in=None, detail=None):
    with unit_of_work(engine, Caller.service()) as uow:
        return dispatch.record_attempt(uow=uow, job_id=attempt.job_id, attempt_id=attempt.attempt_id, result=outcome,
                                       detail=detail, retry_in_seconds=retry_in, **BREAKER)


def claim(engine, max_jobs=10, lease_seconds=60, worker_id="w1"):
    with unit_of_work(engine, Caller.service()) as uow:
        return dispatch.claim_jobs(uow=uow, max_jobs=max_jobs, lease_seconds=lease_seconds, worker_id=worker_id)


def set_status(engine, job_id, status):
    with unit_of_work(engine, Caller.service()) as uow:
        uow.execute("update public.segmentation_results set status = cast(:s as public.segmentation_status), "
                    "mask_image_url = 'https://cdn.example/m.png' where id = :id", {"s": status, "id": job_id})


# --- enqueue and finish ----------------------------------------------------------------------------------------
def test_a_pending_result_enqueues_its_job_in_the_same_transaction(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    row = job(db, job_id)
    assert row.state == "queued" and row.attempts == 0 and row.due_at is not None

    # A rolled-back insert leaves no job behind.
    with pytest.raises(RuntimeError):
        with unit_of_work(dispatch_engine, user_caller(user.id)) as uow:
            rolled_back = str(uow.execute("insert into public.segmentation_results (source_image_url) "
                                          "values ('https://img.example/x.png') returning id").scalar_one())
            raise RuntimeError("roll back")
    assert job(db, rolled_back) is None

    # A result inserted already final is no job.
    finished = str(db.execute("insert into public.segmentation_results (user_id, source_image_url, status) "
                              "values (%s, 'https://img.example/y.png', 'error') returning id",
                              (user.id,)).fetchone()[0])
    assert job(db, finished) is None


@pytest.mark.parametrize("status", ["done", "error"])
def test_a_result_reaching_done_or_error_finishes_its_job(dispatch_settings, dispatch_engine, db, status):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [leased] = claim(dispatch_engine)
    assert leased.result_id == job_id
    set_status(dispatch_engine, job_id, "processing")
    assert job(db, job_id).state == "leased"  # processing keeps the lease: a dead worker's job comes back
    set_status(dispatch_engine, job_id, status)
    row = job(db, job_id)
    assert (row.state, row.outcome, row.due_at) == ("finished", status, None)
    assert claim(dispatch_engine) == []


def test_a_finished_job_is_final_whoever_writes(dispatch_settings, dispatch_engine):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    set_status(dispatch_engine, job_id, "error")
    with pytest.raises(sa_exc.DBAPIError, match="is finished"):
        with unit_of_work(dispatch_engine, Caller.service()) as uow:
            uow.execute("update internal.dispatch_jobs set state = 'queued', outcome = null, finished_at = null, "
                        "due_at = now() where result_id = :id", {"id": job_id})


def test_clients_cannot_read_or_touch_the_queue(dispatch_settings, dispatch_engine):
    user = create_user(dispatch_settings, credits=5)
    submit(dispatch_engine, user)
    for statement in ("select * from internal.dispatch_jobs",
                      "select * from internal.claim_dispatch_jobs(10, 60, 'me')",
                      "select internal.cancel_dispatch_job(gen_random_uuid())"):
        with pytest.raises(sa_exc.ProgrammingError, match="permission denied"):
            with unit_of_work(dispatch_engine, user_caller(user.id)) as uow:
                uow.execute(statement)


# --- pull ------------------------------------------------------------------------------------------------------
def test_concurrent_claimers_never_share_a_job(dispatch_settings, dispatch_engine):
    user = create_user(dispatch_settings, credits=200)
    submitted = set(submit(dispatch_engine, user, 120))
    taken: list[list[str]] = []
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        mine: list[str] = []
        start.wait()
        while batch := claim(dispatch_engine, max_jobs=7, worker_id=name):
            mine += [record.result_id for record in batch]
        taken.append(mine)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    every = [job_id for mine in taken for job_id in mine]
    assert len(every) == len(set(every)) == len(submitted) and set(every) == submitted


def test_an_expired_lease_returns_the_job_to_the_queue(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [first] = claim(dispatch_engine, worker_id="dies")
    assert claim(dispatch_engine, worker_id="other") == []  # held

    expire_holds(db, [job_id])
    [second] = claim(dispatch_engine, worker_id="other")
    assert second.result_id == job_id and second.lease_was_expired and second.lease_id != first.lease_id
    row = job(db, job_id)
    assert (row.worker_id, row.attempts, row.lease_expiries) == ("other", 2, 1)

    # The first worker lost it: its lease can be neither extended nor released.
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        assert dispatch.extend_leases(uow=uow, lease_ids=[first.lease_id], lease_seconds=60) == []
        assert dispatch.release_leases(uow=uow, lease_ids=[first.lease_id], delay_seconds=0) == {}
        [extended] = dispatch.extend_leases(uow=uow, lease_ids=[second.lease_id], lease_seconds=600)
    assert extended.hold_until > second.hold_until


def test_released_jobs_are_claimable_again(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    submitted = submit(dispatch_engine, user, 2)
    leased = claim(dispatch_engine)
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        released = dispatch.release_leases(uow=uow, lease_ids=[lease.lease_id for lease in leased], delay_seconds=0)
    assert sorted(released.values()) == sorted(submitted) and set(released) == {lease.lease_id for lease in leased}
    assert job(db, submitted[0]).state == "queued"
    assert sorted(record.result_id for record in claim(dispatch_engine)) == sorted(submitted)


# --- cancel, queue timeout, reconciliation ----------------------------------------------------------------------
def test_cancel_ends_the_job_releases_the_reservation_and_stops_attempts(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [attempt] = release(dispatch_engine)
    assert reserved(db, user.id) == 1

    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        assert dispatch.cancel_job(uow=uow, job_id=job_id) == "cancelled"
    assert result(db, job_id)["status"] == "error" and result(db, job_id)["metadata"]["error"] == "cancelled"
    assert reserved(db, user.id) == 0
    assert (job(db, job_id).state, job(db, job_id).outcome) == ("finished", "cancelled")
    # The attempt released before the cancel cannot begin after it; nothing can claim the job.
    assert begin(dispatch_engine, attempt) is None
    assert record(dispatch_engine, attempt, "delivered") == "stale"
    assert claim(dispatch_engine) == [] and release(dispatch_engine) == []
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        assert dispatch.cancel_job(uow=uow, job_id=job_id) == "already_finished"
        assert dispatch.cancel_job(uow=uow, job_id="00000000-0000-4000-8000-000000000000") == "missing"


def test_deleting_a_pending_result_as_service_role_removes_its_job(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [attempt] = release(dispatch_engine)
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        uow.execute("delete from public.segmentation_results where id = :id", {"id": job_id})
    assert job(db, job_id) is None and reserved(db, user.id) == 0
    assert begin(dispatch_engine, attempt) is None


def test_a_job_never_dispatched_times_out_in_the_queue_not_by_result_timeout(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    waiting, leased_job = submit(dispatch_engine, user, 2)
    with db.transaction():  # without the updated_at trigger, which would stamp now()
        db.execute("set local session_replication_role = replica")
        db.execute("update public.segmentation_results set updated_at = now() - interval '2 hours' "
                   "where id = any(%s::uuid[])", ([waiting, leased_job],))
    db.execute("update internal.dispatch_jobs set enqueued_at = now() - interval '2 hours' "
               "where result_id = any(%s::uuid[])", ([waiting, leased_job],))
    db.execute("update internal.dispatch_jobs set state = 'leased', attempt_id = gen_random_uuid(), "
               "due_at = now() + interval '1 hour', first_dispatched_at = now() - interval '10 minutes' "
               "where result_id = %s", (leased_job,))

    # RESULT_TIMEOUT_SECONDS counts from the first lease (10 minutes ago) and spares the job still queued.
    assert time_out_stuck_results(dispatch_engine, 3600, 100, dispatch_on=True) == []
    # DISPATCH_QUEUE_TIMEOUT_SECONDS ends the queued one.
    assert time_out_queued_jobs(dispatch_engine, 3600, 100) == [waiting]
    assert result(db, waiting)["metadata"]["error"] == "dispatch_timeout"
    assert job(db, waiting).outcome == "dispatch_timeout" and reserved(db, user.id) == 1
    assert result(db, leased_job)["status"] == "pending"
    # Once the first lease is older than RESULT_TIMEOUT_SECONDS, the result times out as before.
    assert time_out_stuck_results(dispatch_engine, 300, 100, dispatch_on=True) == [leased_job]


# --- push: cap, backoff, exhaustion, breaker, 410 ---------------------------------------------------------------
def test_release_respects_the_in_flight_cap_and_a_stale_attempt_changes_nothing(dispatch_settings, dispatch_engine,
                                                                                  db):
    user = create_user(dispatch_settings, credits=10)
    submitted = submit(dispatch_engine, user, 5)
    first = release(dispatch_engine, max_in_flight=2)
    assert len(first) == 2 and release(dispatch_engine, max_in_flight=2) == []
    assert begin(dispatch_engine, first[0]).result_id == first[0].job_id
    assert record(dispatch_engine, first[0], "delivered") == "delivered"
    [third] = release(dispatch_engine, max_in_flight=2)
    assert third.job_id not in {attempt.job_id for attempt in first}
    delivered = job(db, first[0].job_id)
    assert delivered.state == "delivered" and delivered.first_dispatched_at is not None

    # An attempt whose hold ran out (its worker died) is released again with a new attempt id; the old one is stale.
    expire_holds(db, [first[1].job_id])
    again = [a for a in release(dispatch_engine, max_in_flight=5) if a.job_id == first[1].job_id]
    assert len(again) == 1 and again[0].attempt_id != first[1].attempt_id and again[0].attempt == 2
    assert begin(dispatch_engine, first[1]) is None
    assert record(dispatch_engine, first[1], "failed", retry_in=5) == "stale"
    assert job(db, first[1].job_id).state == "sending"
    assert len(submitted) == 5


def test_a_failed_attempt_backs_off_and_exhausted_retries_fail_the_result(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [attempt] = release(dispatch_engine)
    assert record(dispatch_engine, attempt, "failed", retry_in=30, detail="HTTP 500") == "queued"
    row = job(db, job_id)
    assert row.state == "queued" and row.last_error == "HTTP 500"
    assert release(dispatch_engine) == []  # not due for 30 s

    make_due(db, [job_id])
    [attempt] = release(dispatch_engine)
    assert record(dispatch_engine, attempt, "failed", retry_in=None, detail="HTTP 502") == "finished"
    assert (job(db, job_id).state, job(db, job_id).outcome) == ("finished", "dispatch_failed")
    assert result(db, job_id)["status"] == "error"
    assert result(db, job_id)["metadata"]["error"] == "dispatch_failed" and reserved(db, user.id) == 0


def test_the_circuit_opens_after_consecutive_failures_then_probes_one_at_a_time(dispatch_settings, dispatch_engine,
                                                                                 db):
    user = create_user(dispatch_settings, credits=20)
    submitted = submit(dispatch_engine, user, 10)
    attempts = release(dispatch_engine, max_in_flight=5)
    for attempt in attempts[:3]:
        record(dispatch_engine, attempt, "failed", retry_in=0)
    assert endpoint(db)["circuit_open_until"] is not None
    # Attempts already in flight may fail too: they do not extend the open circuit.
    until = endpoint(db)["circuit_open_until"]
    record(dispatch_engine, attempts[3], "failed", retry_in=0)
    assert endpoint(db)["circuit_open_until"] == until and endpoint(db)["consecutive_failures"] == 4
    assert release(dispatch_engine) == []  # open

    # Half-open once the period ends: one probe at a time, even with room in the cap.
    db.execute("update internal.dispatch_endpoint set circuit_open_until = now() - interval '1 second'")
    record(dispatch_engine, attempts[4], "delivered")  # a success closes it
    assert endpoint(db)["consecutive_failures"] == 0
    for attempt in release(dispatch_engine, max_in_flight=16):
        record(dispatch_engine, attempt, "failed", retry_in=0)
    db.execute("update internal.dispatch_endpoint set circuit_open_until = now() - interval '1 second'")
    probe = release(dispatch_engine, max_in_flight=16)
    assert len(probe) == 1 and release(dispatch_engine, max_in_flight=16) == []
    record(dispatch_engine, probe[0], "failed", retry_in=0)  # a failed probe re-opens for twice as long
    assert endpoint(db)["circuit_open_seconds"] == 60 and release(dispatch_engine) == []
    assert len(submitted) == 10


def test_410_disables_dispatch_until_re_enabled_and_queued_jobs_resume(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    submitted = submit(dispatch_engine, user, 3)
    [attempt] = release(dispatch_engine, max_jobs=1)
    assert record(dispatch_engine, attempt, "gone", detail="410 Gone") == "queued"
    assert endpoint(db)["enabled"] is False
    assert release(dispatch_engine) == []
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        assert dispatch.dispatch_health(uow=uow)["dispatch_disabled"] is True
        assert dispatch.enable_dispatch(uow=uow) is True
    assert sorted(a.job_id for a in release(dispatch_engine)) == sorted(submitted)


def test_throttled_pauses_the_endpoint_and_delays_the_job(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    submitted = submit(dispatch_engine, user, 2)
    [attempt] = release(dispatch_engine, max_jobs=1)
    assert record(dispatch_engine, attempt, "throttled", retry_in=120, detail="HTTP 429") == "queued"
    assert endpoint(db)["consecutive_failures"] == 0  # backpressure, not a failure
    assert release(dispatch_engine) == []  # paused, although the other job is due
    db.execute("update internal.dispatch_endpoint set paused_until = null")
    assert [a.job_id for a in release(dispatch_engine)] == [j for j in submitted if j != attempt.job_id]


# --- operator retry ---------------------------------------------------------------------------------------------
def test_retry_makes_a_waiting_job_due_and_resubmits_a_failed_one(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=5)
    waiting, failing, cancelled = submit(dispatch_engine, user, 3)
    by_job = {a.job_id: a for a in release(dispatch_engine)}
    record(dispatch_engine, by_job[waiting], "failed", retry_in=900)
    record(dispatch_engine, by_job[failing], "failed", retry_in=None, detail="HTTP 500")
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        dispatch.cancel_job(uow=uow, job_id=cancelled)
        assert dispatch.retry_job(uow=uow, job_id=waiting) == dispatch.RetryOutcome("due_now", waiting)
        resubmitted = dispatch.retry_job(uow=uow, job_id=failing)
        assert dispatch.retry_job(uow=uow, job_id=cancelled).action == "not_retryable"
    assert job(db, waiting).attempts == 0 and job(db, waiting).due_at is not None
    assert resubmitted.action == "resubmitted" and resubmitted.job_id not in (failing, None)
    assert job(db, resubmitted.job_id).state == "queued"
    row = db.execute("select user_id::text, status::text, metadata ->> 'retry_of', text_prompt "
                     "from public.segmentation_results where id = %s", (resubmitted.job_id,)).fetchone()
    assert row == (user.id, "pending", failing, "a cat")


def test_health_reports_the_queue(dispatch_settings, dispatch_engine, db):
    user = create_user(dispatch_settings, credits=10)
    submit(dispatch_engine, user, 3)
    claim(dispatch_engine, max_jobs=1)
    db.execute("update internal.dispatch_jobs set enqueued_at = now() - interval '90 seconds' where state = 'queued'")
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        health = dispatch.dispatch_health(uow=uow)
    assert health["dispatch_queued"] == 2 and health["dispatch_leased"] == 1 and health["dispatch_ready"] == 2
    assert health["dispatch_oldest_waiting_seconds"] >= 90 and health["dispatch_enabled"] is True


def test_the_releasers_look_says_whether_the_cap_held_jobs_back_and_when_to_look_next(dispatch_settings,
                                                                                       dispatch_engine, db):
    """One statement on a push session releases what the cap allows, says whether a freed slot matters (`capped`)
    and when a job may next become takeable; a delivery notifies 'slot', a job queued again for a retry ''."""
    user = create_user(dispatch_settings, credits=10)
    submit(dispatch_engine, user, 3)
    with dispatch.PushSession.connect(dispatch_settings, application_name="segbase-tests-push") as session:
        look = session.release(max_jobs=100, **{**PUSH, "max_in_flight": 2})
        assert len(look.attempts) == 2 and look.capped  # the third job waits for a slot
        assert look.next_due is not None and look.next_due <= db.execute("select now()").fetchone()[0]
        assert session.begin_attempt(job_id=look.attempts[0].job_id,
                                     attempt_id=look.attempts[0].attempt_id).result_id == look.attempts[0].job_id
        db.execute(f"listen {dispatch.NOTIFY_CHANNEL}")
        assert session.record_attempt(job_id=look.attempts[0].job_id, attempt_id=look.attempts[0].attempt_id,
                                      result="delivered", detail=None, retry_in_seconds=None, **BREAKER) == "delivered"
        assert [n.payload for n in db.notifies(timeout=10, stop_after=1)] == ["slot"]

        look = session.release(max_jobs=100, **{**PUSH, "max_in_flight": 2})
        assert len(look.attempts) == 1 and look.capped  # the cap is full again, nothing left behind but held
        assert session.record_attempt(job_id=look.attempts[0].job_id, attempt_id=look.attempts[0].attempt_id,
                                      result="failed", detail="HTTP 500", retry_in_seconds=30, **BREAKER) == "queued"
        assert [n.payload for n in db.notifies(timeout=10, stop_after=1)] == [""]

        # Room for more than is due: not capped; the next look is due when the retry is.
        look = session.release(max_jobs=100, **PUSH)
        assert look.attempts == [] and not look.capped
        retry_due = db.execute("select min(due_at) from internal.dispatch_jobs where state = 'queued'").fetchone()[0]
        holds = db.execute("select min(due_at) from internal.dispatch_jobs where state = 'sending'").fetchone()[0]
        assert look.next_due == min(retry_due, holds)


def test_owner_connection_sees_no_notification_before_commit(dispatch_settings, dispatch_engine, db):
    """Enqueueing NOTIFYs segbase_dispatch once the inserting transaction commits, never before."""
    user = create_user(dispatch_settings, credits=5)
    db.execute(f"listen {dispatch.NOTIFY_CHANNEL}")
    with unit_of_work(dispatch_engine, user_caller(user.id)) as uow:
        uow.execute("insert into public.segmentation_results (source_image_url) values ('https://img.example/a.png')")
        assert list(db.notifies(timeout=0.2, stop_after=1)) == []
    assert [n.channel for n in db.notifies(timeout=10, stop_after=1)] == [dispatch.NOTIFY_CHANNEL]
    assert isinstance(db, psycopg.Connection)
