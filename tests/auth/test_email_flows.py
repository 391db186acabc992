"""The email flows end to end: a live `segbase api` and `segbase worker` sending through a real SMTP server the test
starts (segbase's mail catcher on a free port), driven by supabase-py and supabase-js: sign-up confirmation, magic
link and email OTP, recovery, resend, email change, invite and generate_link, and the send limits."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError

from schemas.settings import Settings
from segbase.mailcatcher import MailCatcher
from tests.auth.test_clients import run_node
from tests.auth.test_wire import assert_gotrue_error
from tests.support.auth import PASSWORD, GoTrue, new_email
from tests.support.database import make_test_settings
from tests.support.mail import code_of, link_of, link_params, start_mail_server, wait_for_mail
from tests.support.pipeline import start_worker, stop_all
from tests.support.processes import ApiProcess, SegbaseProcess, free_port

APP = "http://app.example.com"


@dataclass
class MailStack:
    settings: Settings
    api: ApiProcess
    worker: SegbaseProcess
    mail: MailCatcher

    @property
    def url(self) -> str:
        return self.api.url


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailCatcher]:
    server = start_mail_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(settings, mail_server) -> Iterator[MailStack]:
    """Confirmation on (AUTH_MAILER_AUTOCONFIRM=false), mail through the test's SMTP server, no send limits in the
    way (the limits have their own test)."""
    port = free_port()  # mailed links point at API_EXTERNAL_URL
    mail_settings = make_test_settings(
        settings.database_url, f"{settings.instance_id}m{uuid.uuid4().hex[:4]}", smtp_port=mail_server.port,
        api_external_url=f"http://127.0.0.1:{port}",
        auth_mailer_autoconfirm=False, auth_rate_limit_email_sent=100_000, auth_email_max_frequency_seconds=0,
        auth_redirect_allow_list=[f"{APP}/**"])
    api = ApiProcess(mail_settings, port=port).start()
    worker = start_worker(mail_settings, name="mail-worker", concurrency=1)
    yield MailStack(mail_settings, api, worker, mail_server)
    stop_all(api, worker)


def fragment(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).fragment, keep_blank_values=True).items()}


def follow(link: str) -> httpx.Response:
    """What a browser does with the mailed link: GET it (the 303 is not followed: its target is the app)."""
    return httpx.get(link, follow_redirects=False, timeout=15)


def test_sign_up_confirmation_with_supabase_py(stack, anon_key, owner_conn):
    email = new_email()
    client = create_client(stack.url, anon_key)
    signed_up = client.auth.sign_up({"email": email, "password": PASSWORD,
                                     "options": {"email_redirect_to": f"{APP}/welcome"}})
    assert signed_up.session is None and signed_up.user.email_confirmed_at is None
    with pytest.raises(AuthApiError) as unconfirmed:
        create_client(stack.url, anon_key).auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert unconfirmed.value.code == "email_not_confirmed"

    mail = wait_for_mail(stack.mail, email)
    assert mail["Subject"] == "Confirm your email address" and mail["From"] == stack.settings.smtp_sender
    link = link_of(mail)
    params = link_params(link)
    assert link.startswith(f"{stack.url}/auth/v1/verify?") and params["type"] == "signup"
    assert params["redirect_to"] == f"{APP}/welcome"

    landed = follow(link)
    assert landed.status_code == 303 and landed.headers["location"].startswith(f"{APP}/welcome#")
    session = fragment(landed.headers["location"])
    assert session["type"] == "signup" and session["token_type"] == "bearer" and session["refresh_token"]
    assert client.auth.get_user(session["access_token"]).user.email_confirmed_at is not None
    assert create_client(stack.url, anon_key).auth.sign_in_with_password(
        {"email": email, "password": PASSWORD}).session is not None

    again = fragment(follow(link).headers["location"])  # single use
    assert again["error"] == "access_denied" and again["error_code"] == "otp_expired"

    row = owner_conn.execute("select message_id, body_text, body_html, sent_at, attempts from internal.mail_outbox "
                             "where recipient = %s", (email,)).fetchone()
    assert row[0] == mail["Message-ID"] and row[1] == "" and row[2] == "" and row[3] is not None and row[4] == 1
    stored = owner_conn.execute("select count(*) from internal.auth_email_tokens t join auth.users u "
                                "on u.id = t.user_id where u.email = %s", (email,)).fetchone()[0]
    assert stored == 0  # used: gone
    assert params["token"] not in stack.worker.log_text() and email not in stack.worker.log_text()


def test_magic_link_and_email_code_with_supabase_py(stack, anon_key, service_key):
    email = new_email()
    create_client(stack.url, service_key).auth.admin.create_user(
        {"email": email, "password": PASSWORD, "email_confirm": True})
    client = create_client(stack.url, anon_key)
    client.auth.sign_in_with_otp({"email": email, "options": {"email_redirect_to": "https://evil.example.net/x",
                                                              "should_create_user": False}})
    mail = wait_for_mail(stack.mail, email)
    assert mail["Subject"] == "Your sign-in link"
    params = link_params(link_of(mail))
    assert params["type"] == "magiclink" and params["redirect_to"] == stack.settings.auth_site_url  # not allowed
    verified = client.auth.verify_otp({"email": email, "token": code_of(mail), "type": "email"})
    assert verified.session is not None and verified.user.email == email
    with pytest.raises(AuthApiError) as reused:
        create_client(stack.url, anon_key).auth.verify_otp({"email": email, "token": code_of(mail), "type": "email"})
    assert reused.value.code == "otp_expired" and reused.value.status == 403

    with pytest.raises(AuthApiError) as no_user:
        client.auth.sign_in_with_otp({"email": new_email(), "options": {"should_create_user": False}})
    assert no_user.value.code == "otp_disabled"

    newcomer = new_email()  # a new address: created unconfirmed, gets the sign-up confirmation
    client.auth.sign_in_with_otp({"email": newcomer})
    first = wait_for_mail(stack.mail, newcomer)
    assert first["Subject"] == "Confirm your email address"
    assert client.auth.verify_otp({"token_hash": link_params(link_of(first))["token"],
                                   "type": "signup"}).user.email_confirmed_at is not None


def test_recovery_with_supabase_py(stack, anon_key, service_key):
    email = new_email()
    create_client(stack.url, service_key).auth.admin.create_user(
        {"email": email, "password": PASSWORD, "email_confirm": True})
    client = create_client(stack.url, anon_key)
    client.auth.reset_password_for_email(email, {"redirect_to": f"{APP}/reset"})
    client.auth.reset_password_for_email(new_email())  # unknown: the same answer, no mail
    mail = wait_for_mail(stack.mail, email)
    assert mail["Subject"] == "Reset your password" and link_params(link_of(mail))["redirect_to"] == f"{APP}/reset"
    verified = client.auth.verify_otp({"token_hash": link_params(link_of(mail))["token"], "type": "recovery"})
    assert verified.session is not None
    client.auth.update_user({"password": "a brand new password"})
    assert create_client(stack.url, anon_key).auth.sign_in_with_password(
        {"email": email, "password": "a brand new password"}).session is not None


def test_resend_and_email_change(stack, anon_key, service_key):
    gotrue = GoTrue(stack.url, anon_key)
    email = new_email()
    assert gotrue.signup(email).status_code == 200
    wait_for_mail(stack.mail, email)
    assert gotrue.post("/resend", {"type": "signup", "email": email}).status_code == 200
    second = wait_for_mail(stack.mail, email, count=2)
    assert_gotrue_error(gotrue.post("/resend", {"type": "sms", "email": email}), 400, "validation_failed")
    # the first mail's token was replaced by the second's
    client = create_client(stack.url, anon_key)
    session = client.auth.verify_otp({"email": email, "token": code_of(second), "type": "signup"}).session

    changed_to = new_email()
    updated = client.auth.update_user({"email": changed_to})
    assert updated.user.email == email and updated.user.new_email == changed_to
    change = wait_for_mail(stack.mail, changed_to)
    assert change["Subject"] == "Confirm your new email address"
    assert gotrue.post("/resend", {"type": "email_change", "email": email}).status_code == 200
    resent = wait_for_mail(stack.mail, changed_to, count=2)
    assert_gotrue_error(gotrue.post("/verify", {"type": "email_change", "token_hash":
                                                link_params(link_of(change))["token"]}), 403, "otp_expired")
    landed = follow(link_of(resent))
    assert landed.status_code == 303 and fragment(landed.headers["location"])["type"] == "email_change"
    assert client.auth.get_user(session.access_token).user.email == changed_to
    assert create_client(stack.url, anon_key).auth.sign_in_with_password(
        {"email": changed_to, "password": PASSWORD}).session is not None
    gotrue.close()


def test_invite_and_generate_link_with_supabase_py(stack, anon_key, service_key, owner_conn):
    admin = create_client(stack.url, service_key).auth.admin
    invited = new_email()
    user = admin.invite_user_by_email(invited, {"data": {"team": "blue"}, "redirect_to": f"{APP}/join"}).user
    assert user.email == invited and user.invited_at is not None and user.user_metadata == {"team": "blue"}
    mail = wait_for_mail(stack.mail, invited)
    assert mail["Subject"] == "You've been invited"
    landed = follow(link_of(mail))
    assert landed.headers["location"].startswith(f"{APP}/join#") and fragment(landed.headers["location"])["type"] == "invite"
    with pytest.raises(AuthApiError) as again:
        admin.invite_user_by_email(invited)
    assert again.value.code == "email_exists"

    email = new_email()
    admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    before = owner_conn.execute("select count(*) from internal.mail_outbox").fetchone()[0]
    link = admin.generate_link({"type": "magiclink", "email": email, "options": {"redirect_to": f"{APP}/in"}})
    assert link.properties.verification_type == "magiclink" and link.properties.redirect_to == f"{APP}/in"
    assert link.properties.action_link.startswith(f"{stack.url}/auth/v1/verify?") and len(link.properties.email_otp) == 6
    assert link.user.email == email
    assert owner_conn.execute("select count(*) from internal.mail_outbox").fetchone()[0] == before  # no mail
    session = create_client(stack.url, anon_key).auth.verify_otp(
        {"token_hash": link.properties.hashed_token, "type": "magiclink"}).session
    assert session is not None and session.user.email == email
    signup = admin.generate_link({"type": "signup", "email": new_email(), "password": PASSWORD})
    assert signup.properties.verification_type == "signup" and signup.user.email_confirmed_at is None
    with pytest.raises(AuthApiError) as refused:
        create_client(stack.url, anon_key).auth.admin.generate_link({"type": "magiclink", "email": email})
    assert refused.value.code == "not_admin"


@pytest.mark.node
def test_email_flows_with_supabase_js(stack, anon_key, service_key):
    email = new_email()
    create_client(stack.url, service_key).auth.admin.create_user(
        {"email": email, "password": PASSWORD, "email_confirm": True})
    sent = run_node("auth_email.mjs", "otp", stack.url, anon_key, email, f"{APP}/js")
    assert sent == {"error": None, "user": None, "session": None}
    mail = wait_for_mail(stack.mail, email)
    assert link_params(link_of(mail))["redirect_to"] == f"{APP}/js"
    verified = run_node("auth_email.mjs", "verify", stack.url, anon_key, email, code_of(mail))
    assert verified["error"] is None and verified["email"] == email and verified["hasSession"]

    run_node("auth_email.mjs", "recover", stack.url, anon_key, email, f"{APP}/reset")
    recovery = wait_for_mail(stack.mail, email, count=2)
    by_hash = run_node("auth_email.mjs", "verify_hash", stack.url, anon_key, link_params(link_of(recovery))["token"],
                       "recovery")
    assert by_hash["error"] is None and by_hash["email"] == email and by_hash["hasSession"]

    new_address = new_email()
    change = run_node("auth_email.mjs", "change_email", stack.url, anon_key, email, PASSWORD, new_address)
    assert change == {"error": None, "email": email, "newEmail": new_address}
    assert wait_for_mail(stack.mail, new_address)["Subject"] == "Confirm your new email address"
    invite = run_node("auth_email.mjs", "invite", stack.url, service_key, new_email(), f"{APP}/join")
    assert invite["error"] is None and invite["invitedAt"]


def test_send_limits(settings, mail_server, owner_conn, anon_key):
    """AUTH_EMAIL_MAX_FREQUENCY_SECONDS per address and AUTH_RATE_LIMIT_EMAIL_SENT per hour, counted in the outbox
    (this worker's database is the test's alone while it runs)."""
    written = owner_conn.execute("select count(*) from internal.mail_outbox "
                                 "where created_at > now() - interval '1 hour'").fetchone()[0]
    limited = make_test_settings(settings.database_url, f"{settings.instance_id}l{uuid.uuid4().hex[:4]}",
                                 smtp_port=mail_server.port, auth_rate_limit_email_sent=written + 2,
                                 auth_email_max_frequency_seconds=600)
    api = ApiProcess(limited).start()
    try:
        gotrue = GoTrue(api.url, anon_key)
        first, second, third = (gotrue.signup().json()["user"]["email"] for _ in range(3))
        assert gotrue.post("/recover", {"email": first}).status_code == 200
        body = assert_gotrue_error(gotrue.post("/recover", {"email": first}), 429, "over_email_send_rate_limit")
        assert body["message"].startswith("For security purposes, you can only request this after ")
        assert gotrue.post("/otp", {"email": second}).status_code == 200
        body = assert_gotrue_error(gotrue.post("/recover", {"email": third}), 429, "over_email_send_rate_limit")
        assert body["message"] == "Email rate limit exceeded"
        refused_rows = owner_conn.execute("select count(*) from internal.mail_outbox where recipient = %s",
                                          (third,)).fetchone()[0]
        assert refused_rows == 0  # a refused request writes nothing
        gotrue.close()
    finally:
        api.stop()
