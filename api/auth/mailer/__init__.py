"""Auth mail: a one-time token and its mail, written in the caller's transaction; sent by a worker after commit.

`send_token_mail` checks the send limits (AUTH_RATE_LIMIT_EMAIL_SENT per hour, AUTH_EMAIL_MAX_FREQUENCY_SECONDS per
address) under one lock, stores the token's hashes, writes the mail to `internal.mail_outbox` and registers the
Celery send (the row id only: no link, code or address ever goes through the broker or a log) for after commit.
`issue_link` does the same without a mail (the admin API's generate_link).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from urllib.parse import urlsplit

from api.auth.errors import AuthError, ErrorCode
from api.auth.mailer.templates import action_link, render
from api.auth.mailer.tokens import NewToken, email_hash, new_token
from db import mail_outbox
from db.uow import UnitOfWork
from schemas.settings import Settings

@dataclass(frozen=True)
class IssuedLink:
    token: NewToken
    link: str
    redirect_to: str
    kind: str


def issue_link(uow: UnitOfWork, settings: Settings, *, user_id: str, kind: str, email: str, redirect_to: str,
               now) -> IssuedLink:
    """Store a new token of `kind` for the user (replacing the previous one) and return its link; no mail."""
    token = new_token(settings, email)
    mail_outbox.issue_token(uow=uow, user_id=user_id, kind=kind, link_hash=token.link_hash, otp_hash=token.otp_hash,
                            email=email, redirect_to=redirect_to,
                            expires_at=now + timedelta(seconds=settings.auth_mailer_otp_expiry_seconds))
    return IssuedLink(token, action_link(settings, kind, token.token_hash, redirect_to), redirect_to, kind)


def check_send_limits(uow: UnitOfWork, settings: Settings, email: str) -> None:
    counts = mail_outbox.lock_and_count(uow=uow, recipient_hash=email_hash(email))
    gap = settings.auth_email_max_frequency_seconds
    if counts.seconds_since_last is not None and counts.seconds_since_last < gap:
        wait = max(1, int(gap - counts.seconds_since_last + 0.999))
        raise AuthError(f"For security purposes, you can only request this after {wait} seconds.", status=429,
                        code=ErrorCode.OVER_EMAIL_SEND_RATE_LIMIT)
    if counts.last_hour >= settings.auth_rate_limit_email_sent:
        raise AuthError("Email rate limit exceeded", status=429, code=ErrorCode.OVER_EMAIL_SEND_RATE_LIMIT)


def send_token_mail(uow: UnitOfWork, settings: Settings, enqueue: Callable[[str], None], *, user_id: str, kind: str,
                    email: str, redirect_to: str, now) -> IssuedLink:
    """Check the limits, store a token of `kind` and its mail in `uow`; queue the send once `uow` commits."""
    check_send_limits(uow, settings, email)
    issued = issue_link(uow, settings, user_id=user_id, kind=kind, email=email, redirect_to=redirect_to, now=now)
    subject, text, html = render(kind, link=issued.link, otp=issued.token.otp, email=email)
    domain = urlsplit(settings.public_url).hostname or "segbase.localhost"
    mail_id = mail_outbox.insert_mail(uow=uow, message_id=make_msgid(domain=domain), kind=kind, recipient=email,
                                      recipient_hash=email_hash(email), subject=subject, body_text=text,
                                      body_html=html)
    uow.on_commit(lambda: enqueue(mail_id))
    return issued
