"""GoTrue's email flows, independent of Flask: magic link / email OTP (`/otp`), recovery (`/recover`), `/resend`,
`/verify`, sign-up confirmation, email change (`PUT /user`), and the admin API's `/invite` and `/admin/generate_link`
(supabase/auth `internal/api/{magic_link,recover,resend,verify,invite,user,mail}.go`).

Each operation runs in one transaction: the user change, the token (api/auth/mailer/tokens.py) and the mail row
commit together, and the send is queued after commit (api/auth/mailer/__init__.py). Every `redirect_to` stored or
mailed has been through `api.auth.redirects.resolve_redirect` by the view.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from api.auth.admin import email_exists, signup_disabled
from api.auth.errors import AuthError, ErrorCode, validation_failed
from api.auth.mailer import IssuedLink, issue_link, send_token_mail
from api.auth.mailer.tokens import link_hash, otp_hash
from api.auth.passwords import Lane
from api.auth.service import (
    AuthContext,
    IssuedSession,
    _start_session,
    check_password_strength,
    is_banned,
    load_user,
    normalize_email,
    utcnow,
)
from db import auth as auth_db
from db import auth_admin, mail_outbox
from db.uow import UnitOfWork, unit_of_work

Enqueue = Callable[[str], None]

# The token kinds each `/verify` type accepts (GoTrue keeps signup+invite in one column and magiclink+recovery in
# another, so either name of a pair verifies the other; `email` is the typed code of either).
VERIFY_KINDS: dict[str, tuple[str, ...]] = {
    "signup": ("signup", "invite"),
    "invite": ("invite", "signup"),
    "magiclink": ("magiclink", "recovery"),
    "recovery": ("recovery", "magiclink"),
    "email_change": ("email_change",),
    "email": ("signup", "invite", "magiclink", "recovery"),
}
RESEND_TYPES = ("signup", "email_change")
GENERATE_LINK_TYPES = ("signup", "invite", "magiclink", "recovery", "email_change_current", "email_change_new")


def otp_expired(message: str = "Email link is invalid or has expired") -> AuthError:
    return AuthError(message, status=403, code=ErrorCode.OTP_EXPIRED)


def _user_for_update(uow: UnitOfWork, email: str) -> dict[str, Any] | None:
    user = auth_db.find_user_by_email(uow=uow, email=email)
    return None if user is None else auth_db.find_user_by_id(uow=uow, user_id=user["id"], for_update=True)


def _mark(uow: UnitOfWork, user: dict[str, Any], now: datetime, **fields: Any) -> dict[str, Any]:
    return auth_admin.update_user_fields(uow=uow, user_id=user["id"], now=now, fields=fields) or user


def _new_user(uow: UnitOfWork, ctx: AuthContext, email: str, data: dict[str, Any], now: datetime, *,
              confirmed: bool, password_hash: str | None = None) -> dict[str, Any]:
    try:
        return auth_db.insert_user(uow=uow, email=email, password_hash=password_hash,  # type: ignore[arg-type]
                                   user_metadata=data, confirmed=confirmed, now=now)
    except auth_db.EmailTakenError as exc:
        raise email_exists() from exc


# --- sign-up confirmation -----------------------------------------------------------------------------------------

def confirmation_mailer(ctx: AuthContext, enqueue: Enqueue, redirect_to: str) -> Callable[[UnitOfWork, dict], None]:
    """What `service.sign_up` calls, inside its transaction, for a user who must confirm their address."""
    def send(uow: UnitOfWork, user: dict[str, Any]) -> None:
        send_token_mail(uow, ctx.settings, enqueue, user_id=user["id"], kind="signup", email=user["email"],
                        redirect_to=redirect_to, now=utcnow())
    return send


# --- /otp, /recover, /resend ----------------------------------------------------------------------------------------

def send_magic_link(ctx: AuthContext, enqueue: Enqueue, *, email: str, create_user: bool, data: dict[str, Any],
                    redirect_to: str) -> None:
    """POST /otp with an email: a magic link (and code) to a confirmed user; a new or unconfirmed user gets the
    sign-up confirmation instead, unless AUTH_MAILER_AUTOCONFIRM confirms them at once (GoTrue's MagicLink)."""
    settings = ctx.settings
    email = normalize_email(email)
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = _user_for_update(uow, email)
        if user is None:
            if not create_user:
                raise AuthError("Signups not allowed for otp", status=422, code=ErrorCode.OTP_DISABLED)
            if settings.auth_disable_signup:
                raise signup_disabled()
            user = _new_user(uow, ctx, email, data, now, confirmed=settings.auth_mailer_autoconfirm)
        if user.get("email_confirmed_at") is None:
            send_token_mail(uow, settings, enqueue, user_id=user["id"], kind="signup", email=email,
                            redirect_to=redirect_to, now=now)
            _mark(uow, user, now, confirmation_sent_at=now)
        else:
            send_token_mail(uow, settings, enqueue, user_id=user["id"], kind="magiclink", email=email,
                            redirect_to=redirect_to, now=now)
            _mark(uow, user, now, recovery_sent_at=now)


def send_recovery(ctx: AuthContext, enqueue: Enqueue, *, email: str, redirect_to: str) -> None:
    """POST /recover: a recovery link to a known address; an unknown one gets the same 200 and no mail."""
    email = normalize_email(email)
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = _user_for_update(uow, email)
        if user is None:
            return
        send_token_mail(uow, ctx.settings, enqueue, user_id=user["id"], kind="recovery", email=email,
                        redirect_to=redirect_to, now=now)
        _mark(uow, user, now, recovery_sent_at=now)


def resend(ctx: AuthContext, enqueue: Enqueue, *, kind: str | None, email: str | None, redirect_to: str) -> None:
    """POST /resend: the sign-up confirmation of an unconfirmed user, or the pending email change's mail."""
    if kind not in RESEND_TYPES:
        raise validation_failed("Missing one of these types: signup, email_change, sms, phone_change")
    if not email:
        raise validation_failed("Type provided requires an email address")
    email = normalize_email(email)
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = _user_for_update(uow, email)
        if user is None:
            return
        if kind == "signup":
            if user.get("email_confirmed_at") is not None:
                return
            send_token_mail(uow, ctx.settings, enqueue, user_id=user["id"], kind="signup", email=email,
                            redirect_to=redirect_to, now=now)
            _mark(uow, user, now, confirmation_sent_at=now)
        else:
            if not user.get("email_change"):
                return
            send_token_mail(uow, ctx.settings, enqueue, user_id=user["id"], kind="email_change",
                            email=user["email_change"], redirect_to=redirect_to, now=now)
            _mark(uow, user, now, email_change_sent_at=now)


# --- /verify --------------------------------------------------------------------------------------------------------

def verify(ctx: AuthContext, *, kind: str | None, token_hash: str | None = None, email: str | None = None,
           token: str | None = None, user_agent: str | None = None,
           ip: str | None = None) -> tuple[IssuedSession, str | None]:
    """Use a mailed token (its link's `token_hash`, or the address and the typed code) once and sign the user in.
    Returns the session and the redirect stored with the token."""
    if not kind:
        raise validation_failed("Verify requires a verification type")
    if kind not in VERIFY_KINDS:
        raise validation_failed("Invalid email verification type")
    settings = ctx.settings
    if token_hash:
        by_link, message = link_hash(settings, token_hash), "Email link is invalid or has expired"
        by_otp = None
    elif token and email:
        by_link, message = None, "Token has expired or is invalid"
        by_otp = otp_hash(settings, normalize_email(email), token)
    else:
        raise validation_failed("Verify requires either a token or a token hash")
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        used = mail_outbox.consume_token(uow=uow, kinds=VERIFY_KINDS[kind], link_hash=by_link, otp_hash=by_otp)
        if used is None or used["expired"]:
            raise otp_expired(message)
        user = auth_db.find_user_by_id(uow=uow, user_id=used["user_id"], for_update=True)
        if user is None or user.get("deleted_at") is not None:
            raise otp_expired(message)
        if is_banned(user, now):
            raise AuthError("User is banned", status=403, code=ErrorCode.USER_BANNED)
        if used["kind"] == "email_change":
            new_email = used["email"]
            other = auth_db.find_user_by_email(uow=uow, email=new_email)
            if other is not None and other["id"] != user["id"]:
                raise email_exists()
            user = _mark(uow, user, now, email=new_email, email_change="", email_change_sent_at=None)
            auth_admin.set_email_identity(uow=uow, user_id=user["id"], email=new_email, verified=True, now=now)
        elif user.get("email_confirmed_at") is None:
            user = _mark(uow, user, now, email_confirmed_at=now)
            auth_admin.set_email_identity(uow=uow, user_id=user["id"], email=user["email"], verified=True, now=now)
        user = auth_db.record_sign_in(uow=uow, user_id=user["id"], now=now) or user
        return _start_session(uow, settings, user, now, user_agent, ip), used["redirect_to"]


# --- PUT /user email change -------------------------------------------------------------------------------------------

def change_email(ctx: AuthContext, enqueue: Enqueue, claims: dict[str, Any], new_email: str,
                 redirect_to: str) -> dict[str, Any]:
    """With AUTH_MAILER_AUTOCONFIRM the address changes at once (as GoTrue); otherwise it waits in `email_change`
    (the user's `new_email`) until the link mailed to the new address is followed."""
    settings = ctx.settings
    user = load_user(ctx, claims)
    new_email = normalize_email(new_email)
    if new_email == (user.get("email") or ""):
        return user
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        other = auth_db.find_user_by_email(uow=uow, email=new_email)
        if other is not None and other["id"] != user["id"]:
            raise email_exists()
        uow.execute("select pg_advisory_xact_lock(hashtextextended('segbase.auth.email:' || :email, 0))",
                    {"email": new_email})  # the lock insert_user takes: no sign-up grabs the address meanwhile
        if settings.auth_mailer_autoconfirm:
            updated = _mark(uow, user, now, email=new_email, email_change="", email_change_sent_at=None)
            auth_admin.set_email_identity(uow=uow, user_id=user["id"], email=new_email, verified=True, now=now)
            return updated
        send_token_mail(uow, settings, enqueue, user_id=user["id"], kind="email_change", email=new_email,
                        redirect_to=redirect_to, now=now)
        return _mark(uow, user, now, email_change=new_email, email_change_sent_at=now)


# --- admin: /invite and /admin/generate_link --------------------------------------------------------------------------

def _invitee(uow: UnitOfWork, ctx: AuthContext, email: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    user = _user_for_update(uow, email)
    if user is not None and user.get("email_confirmed_at") is not None:
        raise email_exists()
    if user is None:
        user = _new_user(uow, ctx, email, data, now, confirmed=False)
    return _mark(uow, user, now, invited_at=now, confirmation_sent_at=now)


def invite(ctx: AuthContext, enqueue: Enqueue, *, email: str, data: dict[str, Any], redirect_to: str) -> dict[str, Any]:
    """POST /invite (admin): create the user (or re-invite an unconfirmed one) and mail the invitation."""
    email = normalize_email(email)
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = _invitee(uow, ctx, email, data, now)
        send_token_mail(uow, ctx.settings, enqueue, user_id=user["id"], kind="invite", email=email,
                        redirect_to=redirect_to, now=now)
        return user


def generate_link(ctx: AuthContext, *, kind: str | None, email: str | None, password: str | None,
                  data: dict[str, Any], new_email: str | None, redirect_to: str) -> tuple[dict[str, Any], IssuedLink]:
    """POST /admin/generate_link: the link and code a mail would carry, without sending one."""
    if kind not in GENERATE_LINK_TYPES:
        raise validation_failed("Invalid email action link type requested")
    if not email:
        raise validation_failed("Password recovery requires an email" if kind == "recovery" else
                                "An email address is required")
    email = normalize_email(email)
    settings = ctx.settings
    password_hash = None
    if kind == "signup":
        if not password:
            raise validation_failed("Signup requires a valid password")
        check_password_strength(password, settings)
        password_hash = ctx.hasher.hash(password, lane=Lane.ACCOUNT_CHANGE)
    target = normalize_email(new_email) if new_email else None
    if kind.startswith("email_change") and target is None:
        raise validation_failed("Email change requires a new email")
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        if kind == "invite":
            user = _invitee(uow, ctx, email, data, now)
            return user, issue_link(uow, settings, user_id=user["id"], kind="invite", email=email,
                                    redirect_to=redirect_to, now=now)
        user = _user_for_update(uow, email)
        if kind == "signup":
            if user is not None and user.get("email_confirmed_at") is not None:
                raise email_exists()
            if user is None:
                user = _new_user(uow, ctx, email, data, now, confirmed=False, password_hash=password_hash)
            user = _mark(uow, user, now, confirmation_sent_at=now)
            return user, issue_link(uow, settings, user_id=user["id"], kind="signup", email=email,
                                    redirect_to=redirect_to, now=now)
        if user is None:
            raise AuthError("User with this email not found", status=404, code=ErrorCode.USER_NOT_FOUND)
        if kind in ("magiclink", "recovery"):
            user = _mark(uow, user, now, recovery_sent_at=now)
            return user, issue_link(uow, settings, user_id=user["id"], kind=kind, email=email,
                                    redirect_to=redirect_to, now=now)
        other = auth_db.find_user_by_email(uow=uow, email=target)  # type: ignore[arg-type]
        if other is not None and other["id"] != user["id"]:
            raise email_exists()
        user = _mark(uow, user, now, email_change=target, email_change_sent_at=now)
        return user, issue_link(uow, settings, user_id=user["id"], kind="email_change", email=target,  # type: ignore[arg-type]
                                redirect_to=redirect_to, now=now)
