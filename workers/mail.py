"""Sending auth mails from `internal.mail_outbox` (written by /auth/v1 with their token, in one transaction).

`send_auth_mail(mail_id)` carries only the row id. It locks the unsent row (`for update skip locked`: a second
delivery of the same id skips it), sends it over SMTP with the row's own Message-ID, and in the same transaction
marks it sent and blanks its body. A crash between the SMTP answer and the commit leaves the row unsent: the
sweeper queues it again and the resend carries the same Message-ID, so a receiving server or client can drop the
duplicate. A failed send is recorded (`last_error`, never the body or address) and retried by the sweeper with
backoff, up to MAX_ATTEMPTS. Nothing logged names the link, the code or the address.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from celery import shared_task

from broker.tasks import SEND_AUTH_MAIL_TASK, SWEEP_MAIL_OUTBOX_TASK, enqueue_auth_mail
from db import mail_outbox
from db.engine import process_engine
from db.uow import Caller, unit_of_work
from schemas.settings import Settings

log = logging.getLogger("segbase.mail")

MAX_ATTEMPTS = 8
SWEEP_INTERVAL_SECONDS = 30.0
SWEEP_BATCH = 500
REQUEUE_AFTER_SECONDS = 120.0  # a queued row is not queued again for this long
SMTP_TIMEOUT_SECONDS = 30


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"sweep-mail-outbox": {"task": SWEEP_MAIL_OUTBOX_TASK, "schedule": SWEEP_INTERVAL_SECONDS,
                                  "options": {"expires": SWEEP_INTERVAL_SECONDS}}}


def build_message(settings: Settings, row: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = row["recipient"]
    message["Subject"] = row["subject"]
    message["Message-ID"] = row["message_id"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message.set_content(row["body_text"])
    message.add_alternative(row["body_html"], subtype="html")
    return message


def deliver(settings: Settings, message: EmailMessage) -> None:
    """One SMTP transaction: implicit TLS (SMTP_TLS), STARTTLS (SMTP_STARTTLS) or plain; AUTH when SMTP_USER."""
    context = ssl.create_default_context()
    if settings.smtp_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS,
                                                context=context)
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if settings.smtp_starttls:
            client.starttls(context=context)
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_pass.get_secret_value() if settings.smtp_pass else "")
        client.send_message(message)


def _error_summary(exc: Exception) -> str:
    """What is kept of a failure: the exception type and SMTP code, never its text (which can quote an address)."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"


def send_one(settings: Settings, mail_id: str) -> str:
    engine = process_engine(settings, application_name="segbase-mail")
    with unit_of_work(engine, Caller.service()) as uow:
        row = mail_outbox.claim_unsent(uow=uow, mail_id=mail_id)
        if row is None:
            return "skipped"  # sent already, given up, or being sent by another delivery
        try:
            deliver(settings, build_message(settings, row))
        except (smtplib.SMTPException, OSError) as exc:
            attempts = row["attempts"] + 1
            give_up = attempts >= MAX_ATTEMPTS
            mail_outbox.record_failure(uow=uow, mail_id=mail_id, error=_error_summary(exc),
                                       retry_in_seconds=min(3600.0, 30.0 * 2 ** (attempts - 1)), give_up=give_up)
            log.warning("auth mail not sent", extra={"mail_id": mail_id, "kind": row["kind"], "attempts": attempts,
                                                     "error": _error_summary(exc), "given_up": give_up})
            return "failed"
        mail_outbox.mark_sent(uow=uow, mail_id=mail_id)
    log.info("auth mail sent", extra={"mail_id": mail_id, "kind": row["kind"]})
    return "sent"


@shared_task(name=SEND_AUTH_MAIL_TASK, bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def send_auth_mail(self, mail_id: str) -> str:
    return send_one(self.app.conf.segbase_settings, str(mail_id))


def sweep(settings: Settings, app) -> int:
    """Queue every unsent row whose time has come; drop sent rows past OUTBOX_RETENTION_HOURS."""
    engine = process_engine(settings, application_name="segbase-mail")
    with unit_of_work(engine, Caller.service()) as uow:
        due = mail_outbox.due_mail_ids(uow=uow, limit=SWEEP_BATCH, requeue_after_seconds=REQUEUE_AFTER_SECONDS)
        uow.on_commit(lambda: [enqueue_auth_mail(app, mail_id) for mail_id in due])
        mail_outbox.delete_old(uow=uow, older_than_hours=settings.outbox_retention_hours)
    if due:
        log.info("mail outbox sweep queued %d unsent mails", len(due))
    return len(due)


@shared_task(name=SWEEP_MAIL_OUTBOX_TASK, bind=True, ignore_result=True)
def sweep_mail_outbox(self) -> int:
    return sweep(self.app.conf.segbase_settings, self.app)
