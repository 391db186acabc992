"""SQL of the operator console and `segbase operator`: the reads its pages make and thin wrappers of the audited
action functions (db/migrations/20261202150*_*.sql). Each takes an open unit of work (`uow=`) as `service_role`
and never commits; the rules (who is an operator, what may be replayed, cancelled, revoked) live in PostgreSQL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.uow import UnitOfWork

INBOX_STATES = ("received", "applied", "duplicate", "ignored", "rejected")
RESULT_STATUSES = ("pending", "processing", "done", "error")
PAGE_SIZE = 50


class ConsoleActionError(Exception):
    """A console action the database refused; `code` is the function's hint (user_not_found, insufficient_credits…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refusal(exc: BaseException) -> ConsoleActionError | None:
    """The ConsoleActionError behind a database error raised by one of the action functions, else None."""
    orig = getattr(exc, "orig", exc)
    diag = getattr(orig, "diag", None)
    hint = getattr(diag, "message_hint", None)
    if not hint or getattr(orig, "sqlstate", None) not in ("22023", "22003", "P0002", "PT409", "42501"):
        return None
    return ConsoleActionError(hint, getattr(diag, "message_primary", None) or str(orig))


def _rows(result) -> list[dict[str, Any]]:
    return [dict(row) for row in result.mappings()]


# --- operators ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operator:
    id: str
    email: str


def current_operator(*, uow: UnitOfWork, user_id: str) -> Operator | None:
    """The user if they are an operator right now (role set, not banned, not deleted), else None."""
    row = uow.execute("select u.id::text as id, u.email from auth.users u "
                      "where u.id = cast(:id as uuid) and internal.is_operator(u.id)", {"id": user_id}).first()
    return None if row is None else Operator(row.id, row.email or "")


@dataclass(frozen=True)
class RoleChange:
    user_id: str
    changed: bool


def set_operator_role(*, uow: UnitOfWork, email: str, operator: bool) -> RoleChange:
    row = uow.execute("select user_id::text as user_id, changed from internal.set_operator_role(:email, :make)",
                      {"email": email, "make": operator}).one()
    return RoleChange(row.user_id, row.changed)


def record_action(*, uow: UnitOfWork, operator_id: str, action: str, target_kind: str, target_id: str | None,
                  after: dict[str, Any] | None = None) -> int:
    """Audit an action that changes no table of its own (a console sign-in)."""
    return int(uow.execute(
        "select internal.record_operator_action(cast(:op as uuid), :action, :kind, :target, null, "
        "cast(:after as jsonb), null)",
        {"op": operator_id, "action": action, "kind": target_kind, "target": target_id,
         "after": json.dumps(after) if after is not None else None}).scalar_one())


# --- overview -------------------------------------------------------------------------------------------------

def events_per_minute(*, uow: UnitOfWork, minutes: int = 60) -> list[dict[str, Any]]:
    """Inbox events received, applied and rejected in each of the last `minutes` minutes (oldest first)."""
    return _rows(uow.execute(
        "with minutes as ("
        "  select generate_series(date_trunc('minute', now()) - make_interval(mins => :span - 1), "
        "                         date_trunc('minute', now()), interval '1 minute') as minute), "
        "received as (select date_trunc('minute', received_at) as minute, count(*) as n "
        "  from internal.webhook_inbox where received_at >= date_trunc('minute', now()) - make_interval(mins => :span - 1) "
        "  group by 1), "
        "finished as (select date_trunc('minute', finished_at) as minute, "
        "    count(*) filter (where state = 'applied') as applied, count(*) filter (where state = 'rejected') as rejected "
        "  from internal.webhook_inbox where state <> 'received' "
        "   and finished_at >= date_trunc('minute', now()) - make_interval(mins => :span - 1) group by 1) "
        "select m.minute, coalesce(r.n, 0) as received, coalesce(f.applied, 0) as applied, "
        "       coalesce(f.rejected, 0) as rejected "
        "from minutes m left join received r using (minute) left join finished f using (minute) order by m.minute",
        {"span": minutes}))


def inbox_totals(*, uow: UnitOfWork, since_hours: int = 24) -> dict[str, int]:
    """Inbox events per state received in the last `since_hours` hours, and all rejected events ever kept."""
    counts = {state: 0 for state in INBOX_STATES}
    for row in uow.execute("select state, count(*) as n from internal.webhook_inbox "
                           "where received_at >= now() - make_interval(hours => :hours) group by state",
                           {"hours": since_hours}):
        counts[row.state] = int(row.n)
    counts["rejected_total"] = count_rejected_webhooks(uow=uow)
    return counts


def count_rejected_webhooks(*, uow: UnitOfWork) -> int:
    """Rejected inbox events still kept (INBOX_RETENTION_DAYS): each one is a callback that changed nothing."""
    return int(uow.execute("select count(*) from internal.webhook_inbox where state = 'rejected'").scalar_one())


def relay_active(*, uow: UnitOfWork) -> bool:
    """Whether a `segbase relay` holds the relay lock now: its lock connection (application_name
    segbase-relay-lock) holds an advisory lock in this database."""
    return bool(uow.execute(
        "select exists (select from pg_locks l join pg_stat_activity a on a.pid = l.pid "
        "where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database "
        "where datname = current_database()) and a.application_name = 'segbase-relay-lock')").scalar_one())


# --- webhook inbox --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InboxFilter:
    state: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    result_id: str | None = None


def list_inbox(*, uow: UnitOfWork, filters: InboxFilter, limit: int = PAGE_SIZE,
               before: datetime | None = None) -> list[dict[str, Any]]:
    """Inbox events matching `filters`, newest first; `before` pages on (received_at)."""
    return _rows(uow.execute(
        "select id::text as id, result_id::text as result_id, event_status, state, reason, attempts, received_at, "
        "       finished_at, webhook_id "
        "from internal.webhook_inbox "
        "where (cast(:state as text) is null or state = :state) "
        "  and (cast(:since as timestamptz) is null or received_at >= :since) "
        "  and (cast(:until as timestamptz) is null or received_at < :until) "
        "  and (cast(:before as timestamptz) is null or received_at < :before) "
        "  and (cast(:result as uuid) is null or result_id = cast(:result as uuid)) "
        "order by received_at desc limit :limit",
        {"state": filters.state, "since": filters.received_from, "until": filters.received_to, "before": before,
         "result": filters.result_id, "limit": limit}))


def get_inbox_event(*, uow: UnitOfWork, event_id: str) -> dict[str, Any] | None:
    row = uow.execute(
        "select id::text as id, idempotency_key, webhook_id, result_id::text as result_id, event_status, payload, "
        "       state, reason, attempts, received_at, enqueued_at, last_attempt_at, finished_at "
        "from internal.webhook_inbox where id = cast(:id as uuid)", {"id": event_id}).mappings().first()
    return None if row is None else dict(row)


@dataclass(frozen=True)
class Replay:
    replayed: bool
    state: str


def replay_event(*, uow: UnitOfWork, operator_id: str, event_id: str) -> Replay:
    """Move a rejected event back to `received` (audited); the caller queues its id after commit."""
    row = uow.execute("select replayed, state from internal.replay_webhook_event(cast(:op as uuid), "
                      "cast(:id as uuid))", {"op": operator_id, "id": event_id}).one()
    return Replay(row.replayed, row.state)


def replay_rejected(*, uow: UnitOfWork, operator_id: str, received_from: datetime | None,
                    received_to: datetime | None, limit: int) -> list[str]:
    """Replay up to `limit` rejected events received in the window; returns the ids to queue after commit."""
    return [str(event_id) for event_id in uow.execute(
        "select * from internal.replay_rejected_webhook_events(cast(:op as uuid), :since, :until, :limit)",
        {"op": operator_id, "since": received_from, "until": received_to, "limit": limit}).scalars()]


# --- jobs (segmentation results) ------------------------------------------------------------------------------

# A result with its owner's email and its dispatch job (internal.dispatch_jobs, none before dispatch enqueued it).
RESULT_ROW = (
    "select r.id::text as id, r.user_id::text as user_id, u.email, r.status::text as status, r.text_prompt, "
    "       r.price, r.created_at, r.updated_at, r.metadata ->> 'error' as error, "
    "       j.state as dispatch_state, j.outcome as dispatch_outcome, j.attempts as dispatch_attempts, "
    "       j.last_error as dispatch_error, "
    "       ((j.state = 'queued' and (j.attempts > 0 or j.due_at > clock_timestamp())) "
    "        or j.outcome in ('dispatch_failed', 'dispatch_timeout')) as dispatch_retryable "
    "from public.segmentation_results r left join auth.users u on u.id = r.user_id "
    "left join internal.dispatch_jobs j on j.result_id = r.id "
)


def list_results(*, uow: UnitOfWork, status: str | None, user_id: str | None,
                 limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    return _rows(uow.execute(
        RESULT_ROW + "where (cast(:status as text) is null "
        "       or r.status = cast(:status as public.segmentation_status)) "
        "  and (cast(:user_id as uuid) is null or r.user_id = cast(:user_id as uuid)) "
        "order by r.created_at desc limit :limit",
        {"status": status, "user_id": user_id, "limit": limit}))


def result_counts(*, uow: UnitOfWork, user_id: str | None = None) -> dict[str, int]:
    counts = {status: 0 for status in RESULT_STATUSES}
    for row in uow.execute("select status::text as status, count(*) as n from public.segmentation_results "
                           "where cast(:user_id as uuid) is null or user_id = cast(:user_id as uuid) "
                           "group by status", {"user_id": user_id}):
        counts[row.status] = int(row.n)
    return counts


def stuck_results(*, uow: UnitOfWork, older_than_seconds: int, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Unfinished results with no progress for `older_than_seconds`, the longest-stuck first."""
    return _rows(uow.execute(
        RESULT_ROW + "where r.status in ('pending', 'processing') "
        "and r.updated_at < now() - make_interval(secs => :age) order by r.updated_at limit :limit",
        {"age": older_than_seconds, "limit": limit}))


def failed_dispatches(*, uow: UnitOfWork, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Jobs dispatch gave up on (failed, timed out in the queue, unreadable image), the latest first."""
    return _rows(uow.execute(
        RESULT_ROW + "where j.outcome in ('dispatch_failed', 'dispatch_timeout', 'source_image_not_readable') "
        "order by j.finished_at desc limit :limit", {"limit": limit}))


def cancel_result(*, uow: UnitOfWork, operator_id: str, result_id: str, reason: str) -> bool:
    """Cancel an unfinished job through dispatch's cancel (audited); False when it had already finished."""
    row = uow.execute("select cancelled from internal.cancel_segmentation_result(cast(:op as uuid), "
                      "cast(:id as uuid), :reason)", {"op": operator_id, "id": result_id, "reason": reason}).one()
    return bool(row.cancelled)


@dataclass(frozen=True)
class DispatchRetry:
    action: str  # due_now | resubmitted | not_retryable | missing
    job_id: str | None


def retry_dispatch(*, uow: UnitOfWork, operator_id: str, result_id: str) -> DispatchRetry:
    """Retry a job's dispatch (audited): a waiting job becomes due now, a failed one is resubmitted as a new job."""
    row = uow.execute("select action, job_id::text as job_id from internal.retry_failed_dispatch("
                      "cast(:op as uuid), cast(:id as uuid))", {"op": operator_id, "id": result_id}).one()
    return DispatchRetry(row.action, row.job_id)


def reenable_dispatch(*, uow: UnitOfWork, operator_id: str) -> bool:
    """Re-enable push dispatch and close its circuit (audited); returns whether it was disabled."""
    return bool(uow.execute("select was_disabled from internal.reenable_dispatch(cast(:op as uuid))",
                            {"op": operator_id}).scalar_one())


# --- users ----------------------------------------------------------------------------------------------------

USER_SUMMARY = (
    "select u.id::text as id, u.email, u.created_at, u.last_sign_in_at, u.banned_until, "
    "       (u.banned_until is not null and u.banned_until > now()) as banned, "
    "       coalesce(u.raw_app_meta_data ->> 'segbase_role', '') = 'operator' as operator, "
    "       p.tier::text as tier, p.credits, "
    "       coalesce((select sum(r.price) from public.segmentation_results r "
    "                  where r.user_id = u.id and r.status in ('pending', 'processing')), 0) as reserved "
    "from auth.users u left join public.users_profile p on p.id = u.id "
)


def search_users(*, uow: UnitOfWork, query: str, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Users whose email contains `query` (or whose id is `query`), newest first."""
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return _rows(uow.execute(
        USER_SUMMARY + "where u.deleted_at is null and (u.email ilike :pattern or u.id::text = :query) "
        "order by u.created_at desc limit :limit", {"pattern": pattern, "query": query.lower(), "limit": limit}))


def get_user(*, uow: UnitOfWork, user_id: str) -> dict[str, Any] | None:
    row = uow.execute(USER_SUMMARY + "where u.id = cast(:id as uuid)", {"id": user_id}).mappings().first()
    return None if row is None else dict(row)


def credit_history(*, uow: UnitOfWork, user_id: str, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    return _rows(uow.execute(
        "select id::text as id, amount, reason, credits_after, created_at from public.credit_grants "
        "where user_id = cast(:id as uuid) order by created_at desc limit :limit", {"id": user_id, "limit": limit}))


@dataclass(frozen=True)
class CreditChange:
    grant_id: str
    credits: int
    reserved: int


def grant_credits(*, uow: UnitOfWork, operator_id: str, user_id: str, amount: int, reason: str) -> CreditChange:
    """Grant (amount > 0) or revoke (amount < 0) credits: balance, credit_grants row and audit row together."""
    row = uow.execute("select grant_id::text as grant_id, credits, reserved from internal.grant_credits("
                      "cast(:op as uuid), cast(:user as uuid), :amount, :reason)",
                      {"op": operator_id, "user": user_id, "amount": amount, "reason": reason}).one()
    return CreditChange(row.grant_id, int(row.credits), int(row.reserved))


@dataclass(frozen=True)
class BanChange:
    changed: bool
    revoked_sessions: list[str]


def set_ban(*, uow: UnitOfWork, operator_id: str, user_id: str, banned: bool, reason: str) -> BanChange:
    row = uow.execute("select changed, revoked_sessions from internal.set_user_ban(cast(:op as uuid), "
                      "cast(:user as uuid), :banned, :reason)",
                      {"op": operator_id, "user": user_id, "banned": banned, "reason": reason}).one()
    return BanChange(row.changed, [str(session) for session in row.revoked_sessions or []])


# --- audit log ------------------------------------------------------------------------------------------------

def list_audit(*, uow: UnitOfWork, target_id: str | None = None, limit: int = PAGE_SIZE,
               before_id: int | None = None) -> list[dict[str, Any]]:
    return _rows(uow.execute(
        "select id, operator_id::text as operator_id, operator_email, actor, action, target_kind, target_id, "
        "       before, after, reason, created_at "
        "from internal.operator_audit "
        "where (cast(:target as text) is null or target_id = :target) "
        "  and (cast(:before_id as bigint) is null or id < :before_id) "
        "order by id desc limit :limit", {"target": target_id, "before_id": before_id, "limit": limit}))


# --- console sessions -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionUser:
    user_id: str
    email: str
    operator: bool


def session_user(*, uow: UnitOfWork, session_id: str) -> SessionUser | None:
    """The user of a live session with their operator state read now; None when the session ended or expired."""
    row = uow.execute("select user_id::text as user_id, email, operator "
                      "from internal.console_session_operator(cast(:id as uuid))", {"id": session_id}).first()
    return None if row is None else SessionUser(row.user_id, row.email or "", bool(row.operator))


def end_session_at(*, uow: UnitOfWork, session_id: str, not_after: datetime) -> None:
    """Give a console session its lifetime (GoTrue's `not_after`); runs as supabase_auth_admin."""
    uow.execute("update auth.sessions set not_after = :until where id = cast(:id as uuid)",
                {"id": session_id, "until": not_after})
