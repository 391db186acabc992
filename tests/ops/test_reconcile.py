"""Reconciliation: results without progress past RESULT_TIMEOUT_SECONDS become `error` (metadata.error =
"timeout") through the ordinary status machine, which releases their reservation; nothing else is touched."""
from __future__ import annotations

from datetime import timedelta

from db.pipeline import apply_events, begin_batch, store_inbox_event
from db.uow import Caller, unit_of_work
from tests.support.factories import create_user
from tests.support.ops import insert_result
from workers.maintenance import time_out_stuck_results

HOUR = timedelta(hours=1)


def available(conn, user_id: str) -> tuple[int, int]:
    """(credits, reserved by in-flight results) of a user."""
    return conn.execute(
        "select p.credits, coalesce((select sum(price) from public.segmentation_results r "
        "where r.user_id = p.id and r.status in ('pending', 'processing')), 0) "
        "from public.users_profile p where p.id = %s", (user_id,)).fetchone()


def test_stuck_results_time_out_and_release_their_reservation(engine, owner_conn, settings):
    user = create_user(settings, credits=5)
    stuck_pending = insert_result(owner_conn, user.id, "pending", 3 * HOUR, updated_age=2 * HOUR)
    stuck_processing = insert_result(owner_conn, user.id, "processing", 3 * HOUR, updated_age=2 * HOUR,
                                     metadata={"model": "sam"})
    fresh = insert_result(owner_conn, user.id, "pending", 3 * HOUR, updated_age=timedelta(minutes=10))
    assert available(owner_conn, user.id) == (5, 3)

    timed_out = time_out_stuck_results(engine, timeout_seconds=3600, batch_size=1)

    assert {stuck_pending, stuck_processing} <= set(timed_out) and fresh not in timed_out
    rows = {row[0]: row[1:] for row in owner_conn.execute(
        "select id::text, status::text, metadata from public.segmentation_results where user_id = %s",
        (user.id,))}
    assert rows[stuck_pending][0] == "error" and rows[stuck_pending][1]["error"] == "timeout"
    assert rows[stuck_processing][1]["model"] == "sam"  # metadata is merged, not replaced
    assert rows[stuck_processing][1]["error"] == "timeout" and "timed_out_at" in rows[stuck_processing][1]
    assert rows[fresh][0] == "pending"
    # Reservation released, nothing charged.
    assert available(owner_conn, user.id) == (5, 1)
    assert owner_conn.execute("select count(*) from public.usage_logs where user_id = %s",
                              (user.id,)).fetchone()[0] == 0
    # Running again changes nothing (the rows are final now).
    assert not {stuck_pending, stuck_processing} & set(
        time_out_stuck_results(engine, timeout_seconds=3600, batch_size=10))


def test_a_done_arriving_after_the_timeout_is_rejected_as_late_and_charges_nothing(engine, owner_conn, settings):
    user = create_user(settings, credits=3)
    result = insert_result(owner_conn, user.id, "processing", 3 * HOUR, updated_age=2 * HOUR)
    assert result in time_out_stuck_results(engine, timeout_seconds=3600, batch_size=100)

    with unit_of_work(engine, Caller.service()) as uow:
        event = store_inbox_event(uow=uow, idempotency_key=f"test:late:{result}", webhook_id=None, result_id=result,
                                  event_status="done",
                                  payload='{"mask_url": "https://cdn.example/m.png", "labels": []}')
    with unit_of_work(engine, Caller.service()) as uow:
        assert begin_batch(uow=uow, event_id=event.event_id, max_attempts=5, max_events=1)[0].state == "received"
    with unit_of_work(engine, Caller.service()) as uow:
        [outcome] = apply_events(uow=uow, event_ids=[event.event_id])

    assert outcome.state == "rejected"
    state, reason = owner_conn.execute("select state, reason from internal.webhook_inbox where id = %s",
                                       (event.event_id,)).fetchone()
    assert state == "rejected" and reason.startswith("late:")
    assert owner_conn.execute("select status::text, mask_image_url from public.segmentation_results where id = %s",
                              (result,)).fetchone() == ("error", None)
    assert available(owner_conn, user.id) == (3, 0)
    assert owner_conn.execute("select count(*) from public.usage_logs where user_id = %s",
                              (user.id,)).fetchone()[0] == 0


def test_other_rejections_keep_their_reason(engine, owner_conn, settings):
    user = create_user(settings, credits=3)
    result = insert_result(owner_conn, user.id, "error", HOUR)  # failed on its own, not by timeout
    with unit_of_work(engine, Caller.service()) as uow:
        event = store_inbox_event(uow=uow, idempotency_key=f"test:illegal:{result}", webhook_id=None,
                                  result_id=result, event_status="done", payload='{"mask_url": "https://x.example/m"}')
    with unit_of_work(engine, Caller.service()) as uow:
        [outcome] = apply_events(uow=uow, event_ids=[event.event_id])
    assert outcome.state == "rejected"
    assert owner_conn.execute("select reason from internal.webhook_inbox where id = %s",
                              (event.event_id,)).fetchone()[0].startswith("illegal transition")
