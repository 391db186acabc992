"""Sign-up with email confirmation on (AUTH_MAILER_AUTOCONFIRM=false): GoTrue's bare-user answers, in-process."""
from __future__ import annotations

import pytest
from supabase_auth.types import Session, User

from api.auth.errors import AuthError
from api.auth.responses import session_json, user_json
from api.auth.service import AuthContext, sign_in_with_password, sign_up
from tests.support.auth import new_email


@pytest.fixture(scope="module")
def confirming(settings, engine, auth_context) -> AuthContext:
    return AuthContext(settings.model_copy(update={"auth_mailer_autoconfirm": False}), engine, auth_context.hasher)


def test_confirmation_on_returns_the_bare_unconfirmed_user(confirming):
    email = new_email()
    user, session = sign_up(confirming, email=email, password="long enough password", data={"display_name": "C"})
    assert session is None
    body = user_json(user)
    assert "email_confirmed_at" not in body and body["confirmation_sent_at"]
    assert User.model_validate(body).email == email  # what supabase-py parses
    with pytest.raises(AuthError) as refused:
        sign_in_with_password(confirming, email=email, password="long enough password")
    assert (refused.value.status, refused.value.code) == (400, "email_not_confirmed")


def test_confirmation_on_does_not_reveal_a_confirmed_account(confirming, auth_context):
    email = new_email()
    real, _ = sign_up(auth_context, email=email, password="long enough password", data={})
    fake, session = sign_up(confirming, email=email, password="another long password", data={})
    assert session is None and fake["id"] != real["id"] and user_json(fake)["identities"] == []


def test_session_json_parses_in_supabase_py(auth_context):
    _, session = sign_up(auth_context, email=new_email(), password="long enough password", data={})
    parsed = Session.model_validate(session_json(session))
    assert parsed.user.identities[0].provider == "email" and parsed.expires_at == session.access.expires_at
