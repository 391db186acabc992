"""Operator sign-in with email and password (the auth service's user lookup and password hasher: argon2id off the
event loop, a dummy verification for unknown emails) or with Google (the auth service's redirect flow, PKCE),
then a console session and its audit row in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine

from api.auth.passwords import PasswordHasher
from api.auth.service import normalize_email
from api.errors import ApiError
from api.identity import forget_session
from db import auth as auth_db
from db import console as console_db
from db.uow import Caller, unit_of_work
from schemas.settings import Settings


class SignInError(ApiError):
    status, code = 400, "invalid_credentials"


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    operator_id: str
    email: str


def sign_in_operator(settings: Settings, engine: Engine, hasher: PasswordHasher, *, email: str, password: str,
                     user_agent: str | None, ip: str | None) -> ConsoleSession:
    """Check the password, then that the user is an operator now; only then start a session (no session is ever
    made for a non-operator). Wrong email and wrong password get the same answer and cost the same time."""
    try:
        email = normalize_email(email)
    except ApiError:
        email = ""
    user = None
    if email:
        with unit_of_work(engine, auth_db.AUTH_ADMIN) as uow:
            user = auth_db.find_user_by_email(uow=uow, email=email)
    if user is None:
        hasher.verify_dummy(password)
        raise SignInError("Invalid email or password")
    if not hasher.verify(user.get("encrypted_password") or "", password):
        raise SignInError("Invalid email or password")
    return admit_operator(settings, engine, user, user_agent=user_agent, ip=ip, method="password")


def admit_operator(settings: Settings, engine: Engine, user: dict[str, Any], *, user_agent: str | None,
                   ip: str | None, method: str) -> ConsoleSession:
    """A user whose credentials passed (a password, or Google through the redirect flow): confirmed, not banned
    and an operator now, or no session at all."""
    if user.get("email_confirmed_at") is None:
        raise SignInError("Email not confirmed", status=403, code="email_not_confirmed")
    now = datetime.now(timezone.utc)
    banned_until = user.get("banned_until")
    if banned_until is not None and banned_until > now:
        raise SignInError("This account is banned", status=403, code="user_banned")
    with unit_of_work(engine, Caller.service()) as uow:
        operator = console_db.current_operator(uow=uow, user_id=user["id"])
    if operator is None:
        raise SignInError("This account is not a console operator (an operator can grant the role with "
                          "`segbase operator grant EMAIL`)", status=403, code="not_operator")
    with unit_of_work(engine, auth_db.AUTH_ADMIN) as uow:
        session_id = auth_db.create_session(uow=uow, user_id=user["id"], now=now, user_agent=user_agent, ip=ip)
        console_db.end_session_at(uow=uow, session_id=session_id,
                                  not_after=now + timedelta(hours=settings.console_session_hours))
        auth_db.record_sign_in(uow=uow, user_id=user["id"], now=now)
        # The audit function is service_role's: switch roles inside the same transaction, so the session and its
        # audit row commit together (and the function checks the operator role once more).
        uow.become(Caller.service())
        console_db.record_action(uow=uow, operator_id=user["id"], action="console.sign_in", target_kind="session",
                                 target_id=session_id, after={"user_agent": (user_agent or "")[:200], "ip": ip,
                                                              "method": method})
    return ConsoleSession(session_id, user["id"], user.get("email") or "")


def sign_out(engine: Engine, session_id: str) -> None:
    with unit_of_work(engine, auth_db.AUTH_ADMIN) as uow:
        auth_db.delete_session(uow=uow, session_id=session_id)
    forget_session(session_id)
