"""The auth mail outbox: the Celery message carries only the row id, a send is idempotent per row (one Message-ID,
a second delivery skips a sent row), a crash between SMTP and commit is repaired by the sweeper with the same
Message-ID, a failed send is recorded without the body or address and retried later, and a sent body is blanked."""
from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from broker.celery_app import create_celery, queue_name
from broker.tasks import SEND_AUTH_MAIL_TASK
from segbase.mailcatcher import MailCatcher
from tests.support.auth import GoTrue
from tests.support.database import make_test_settings
from tests.support.mail import link_of, link_params, start_mail_server, wait_for_mail
from tests.support.processes import ApiProcess, free_port
from workers.mail import build_message, deliver, send_one, sweep


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailCatcher]:
    server = start_mail_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def no_worker(settings, mail_server):
    """An API whose mails nobody sends until the test does: no worker consumes its queue."""
    mail_settings = make_test_settings(settings.database_url, f"{settings.instance_id}o{uuid.uuid4().hex[:4]}",
                                       smtp_port=mail_server.port, auth_email_max_frequency_seconds=0,
                                       auth_rate_limit_email_sent=100_000)
    api = ApiProcess(mail_settings).start()
    yield mail_settings, api
    api.stop()
    client = redis.Redis.from_url(mail_settings.redis_url)
    client.delete(queue_key(mail_settings))  # the messages no worker consumed
    client.close()


def queue_key(settings) -> str:
    return f"{settings.redis_key('kombu')}:{queue_name(settings)}"  # kombu's global key prefix, then the queue


def queued_messages(settings) -> list[dict]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return [json.loads(raw) for raw in client.lrange(queue_key(settings), 0, -1)]
    finally:
        client.close()


def outbox_row(owner_conn, recipient: str):
    return owner_conn.execute("select id::text, message_id, sent_at, body_text, attempts, last_error, failed_at, "
                              "available_at > now() from internal.mail_outbox where recipient = %s "
                              "order by created_at desc limit 1", (recipient,)).fetchone()


def test_the_message_carries_only_the_row_id_and_a_send_is_idempotent(no_worker, mail_server, anon_key,
                                                                       owner_conn):
    settings, api = no_worker
    gotrue = GoTrue(api.url, anon_key)
    email = gotrue.signup().json()["user"]["email"]
    assert gotrue.post("/recover", {"email": email}).status_code == 200
    gotrue.close()
    mail_id, message_id, sent_at, body, *_ = outbox_row(owner_conn, email)
    assert sent_at is None and "/auth/v1/verify?token=" in body

    messages = [m for m in queued_messages(settings) if m["headers"]["task"] == SEND_AUTH_MAIL_TASK]
    mine = [m for m in messages if mail_id in json.dumps(m["headers"])]
    assert len(mine) == 1
    args, kwargs, _ = json.loads(base64.b64decode(mine[0]["body"]))
    assert args == [mail_id] and kwargs == {}
    raw = json.dumps(mine[0])
    assert email not in raw and "verify" not in raw

    assert send_one(settings, mail_id) == "sent"
    assert send_one(settings, mail_id) == "skipped"  # a redelivered message
    mail = wait_for_mail(mail_server, email)
    assert mail["Message-ID"] == message_id and len(mail_server.to(email)) == 1
    _, _, sent_at, body, attempts, *_ = outbox_row(owner_conn, email)
    assert sent_at is not None and body == "" and attempts == 1
    token = link_params(link_of(mail))["token"]
    assert owner_conn.execute("select count(*) from internal.auth_email_tokens where link_hash = %s or "
                              "otp_hash = %s", (token, token)).fetchone()[0] == 0  # only keyed hashes are stored


def test_a_crash_after_smtp_is_repaired_by_the_sweeper_with_the_same_message_id(no_worker, mail_server, anon_key,
                                                                                owner_conn):
    settings, api = no_worker
    gotrue = GoTrue(api.url, anon_key)
    email = gotrue.signup().json()["user"]["email"]
    assert gotrue.post("/recover", {"email": email}).status_code == 200
    gotrue.close()
    mail_id = outbox_row(owner_conn, email)[0]
    row = owner_conn.execute("select id, message_id, kind, recipient, subject, body_text, body_html, attempts from "
                             "internal.mail_outbox where id = %s", (mail_id,)).fetchone()
    deliver(settings, build_message(settings, dict(zip(
        ("id", "message_id", "kind", "recipient", "subject", "body_text", "body_html", "attempts"), row))))
    # ...and the worker died before its commit: the row is still unsent. Its time comes; the sweeper queues it.
    owner_conn.execute("update internal.mail_outbox set available_at = now() - interval '1 second' where id = %s",
                       (mail_id,))
    app = create_celery(settings)
    assert sweep(settings, app) >= 1
    assert outbox_row(owner_conn, email)[7]  # pushed into the future: the next sweep does not queue it again
    queued = [m for m in queued_messages(settings) if mail_id in json.dumps(m["headers"])]
    assert len(queued) == 2  # the API's message and the sweeper's
    assert send_one(settings, mail_id) == "sent"
    copies = wait_for_mail(mail_server, email, count=2), mail_server.to(email)[0]
    assert copies[0]["Message-ID"] == copies[1]["Message-ID"] == row[1]


def test_a_failed_send_is_recorded_without_the_address_and_retried_later(no_worker, anon_key, owner_conn):
    settings, api = no_worker
    gotrue = GoTrue(api.url, anon_key)
    email = gotrue.signup().json()["user"]["email"]
    assert gotrue.post("/recover", {"email": email}).status_code == 200
    gotrue.close()
    mail_id = outbox_row(owner_conn, email)[0]
    unreachable = settings.model_copy(update={"smtp_port": free_port()})
    assert send_one(unreachable, mail_id) == "failed"
    _, _, sent_at, body, attempts, last_error, failed_at, later = outbox_row(owner_conn, email)
    assert sent_at is None and failed_at is None and attempts == 1 and later and body
    assert last_error == "ConnectionRefusedError" and email not in last_error
