"""SQL of the auth mail outbox (`internal.mail_outbox`) and its one-time tokens (`internal.auth_email_tokens`).

The API writes a token and its mail in one transaction as `supabase_auth_admin` (`issue_token`, `insert_mail`);
the worker sends as `service_role` (`claim_unsent`, `mark_sent`, `record_failure`) and the sweeper re-queues what
no worker sent (`due_mail_ids`). Every function takes the caller's open unit of work and never commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.uow import UnitOfWork

# One lock serialises the send-limit check and the insert of every auth mail, so two requests cannot both pass a
# limit the second one would break.
SEND_LIMIT_LOCK = "segbase.auth.mail.send_limits"


@dataclass(frozen=True)
class SendCounts:
    last_hour: int  # mails written in the past hour, every address
    seconds_since_last: float | None  # since the last mail to this address, None if none this hour


def lock_and_count(*, uow: UnitOfWork, recipient_hash: str) -> SendCounts:
    uow.execute("select pg_advisory_xact_lock(hashtextextended(:lock, 0))", {"lock": SEND_LIMIT_LOCK})
    row = uow.execute(
        "select count(*) as last_hour, extract(epoch from now() - max(created_at) "
        "filter (where recipient_hash = :recipient)) as since from internal.mail_outbox "
        "where created_at > now() - interval '1 hour'", {"recipient": recipient_hash}).one()
    return SendCounts(int(row.last_hour), None if row.since is None else float(row.since))


def insert_mail(*, uow: UnitOfWork, message_id: str, kind: str, recipient: str, recipient_hash: str, subject: str,
                body_text: str, body_html: str) -> str:
    return str(uow.execute(
        "insert into internal.mail_outbox (message_id, kind, recipient, recipient_hash, subject, body_text, body_html, "
        "available_at) values (:message_id, :kind, :recipient, :recipient_hash, :subject, :text, :html, "
        "now() + interval '60 seconds') returning id",
        {"message_id": message_id, "kind": kind, "recipient": recipient, "recipient_hash": recipient_hash,
         "subject": subject, "text": body_text, "html": body_html}).scalar_one())


def claim_unsent(*, uow: UnitOfWork, mail_id: str) -> dict[str, Any] | None:
    """The unsent row, locked for this send; None when it was sent, given up, or another worker holds it."""
    row = uow.execute("select id, message_id, kind, recipient, subject, body_text, body_html, attempts "
                      "from internal.mail_outbox where id = cast(:id as uuid) and sent_at is null "
                      "and failed_at is null for update skip locked", {"id": mail_id}).first()
    return None if row is None else dict(row._mapping)


def mark_sent(*, uow: UnitOfWork, mail_id: str) -> None:
    """Sent: the body (which holds the link and code) is blanked; the row stays for the send limits."""
    uow.execute("update internal.mail_outbox set sent_at = now(), attempts = attempts + 1, body_text = '', "
                "body_html = '', last_error = null where id = cast(:id as uuid)", {"id": mail_id})


def record_failure(*, uow: UnitOfWork, mail_id: str, error: str, retry_in_seconds: float, give_up: bool) -> None:
    uow.execute("update internal.mail_outbox set attempts = attempts + 1, last_error = :error, "
                "available_at = now() + make_interval(secs => :retry), "
                "failed_at = case when :give_up then now() end, "
                "body_text = case when :give_up then '' else body_text end, "
                "body_html = case when :give_up then '' else body_html end where id = cast(:id as uuid)",
                {"id": mail_id, "error": error[:500], "retry": retry_in_seconds, "give_up": give_up})


def due_mail_ids(*, uow: UnitOfWork, limit: int, requeue_after_seconds: float) -> list[str]:
    """Unsent rows whose time has come (never queued, lost by the broker, or failed and backed off); each is pushed
    `requeue_after_seconds` into the future so the next sweep does not queue it again while it waits."""
    rows = uow.execute(
        "update internal.mail_outbox set available_at = now() + make_interval(secs => :later) where id in ("
        "select id from internal.mail_outbox where sent_at is null and failed_at is null and available_at <= now() "
        "order by available_at limit :limit for update skip locked) returning id",
        {"limit": limit, "later": requeue_after_seconds}).scalars()
    return [str(mail_id) for mail_id in rows]


def delete_old(*, uow: UnitOfWork, older_than_hours: int) -> int:
    """Sent or abandoned rows past retention (at least the hour the send limit counts)."""
    return uow.execute("delete from internal.mail_outbox where (sent_at is not null or failed_at is not null) "
                       "and created_at < now() - make_interval(hours => :hours)",
                       {"hours": max(1, older_than_hours)}).rowcount


# --- one-time tokens --------------------------------------------------------------------------------------------

def issue_token(*, uow: UnitOfWork, user_id: str, kind: str, link_hash: str, otp_hash: str, email: str,
                redirect_to: str | None, expires_at: datetime) -> None:
    """Store a token's hashes; the user's previous token of this kind stops working (one live token per kind)."""
    uow.execute("delete from internal.auth_email_tokens where user_id = cast(:user_id as uuid) and kind = :kind",
                {"user_id": user_id, "kind": kind})
    uow.execute("insert into internal.auth_email_tokens (user_id, kind, link_hash, otp_hash, email, redirect_to, "
                "expires_at) values (cast(:user_id as uuid), :kind, :link_hash, :otp_hash, :email, :redirect_to, "
                ":expires_at)",
                {"user_id": user_id, "kind": kind, "link_hash": link_hash, "otp_hash": otp_hash, "email": email,
                 "redirect_to": redirect_to, "expires_at": expires_at})


def consume_token(*, uow: UnitOfWork, kinds: tuple[str, ...], link_hash: str | None = None,
                  otp_hash: str | None = None) -> dict[str, Any] | None:
    """Take a token (by its link hash or its code's hash) out of the table: single use whatever happens next. The
    caller checks `expired` and, within the same transaction, acts on it."""
    column = "link_hash" if link_hash is not None else "otp_hash"
    row = uow.execute(
        f"delete from internal.auth_email_tokens where id = (select id from internal.auth_email_tokens "
        f"where {column} = :hash and kind = any(:kinds) order by created_at desc limit 1 for update) "
        "returning user_id, kind, email, redirect_to, expires_at <= now() as expired",
        {"hash": link_hash if link_hash is not None else otp_hash, "kinds": list(kinds)}).first()
    if row is None:
        return None
    token = dict(row._mapping)
    token["user_id"] = str(token["user_id"])
    return token


def delete_user_tokens(*, uow: UnitOfWork, user_id: str) -> None:
    uow.execute("delete from internal.auth_email_tokens where user_id = cast(:id as uuid)", {"id": user_id})
