"""The console in a real browser (playwright-core + Debian's chromium, tests/console/browser.mjs) against a live
`segbase api` and, for replay, a live `segbase worker`: what an operator does, checked in the page and then in the
database. Screenshots of every page a scenario reached are kept when it fails."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from db.uow import unit_of_work
from tests.support.console import audit_rows, make_operator
from tests.support.factories import create_user
from tests.support.pipeline import event_body, post_event, start_worker, stop_all, user_caller
from tests.support.processes import LOG_DIR, ROOT, wait_for

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests" / "console" / "browser.mjs"

pytestmark = pytest.mark.node


def run_scenario(name: str, api_url: str, request: pytest.FixtureRequest, **inputs: str) -> None:
    """Run one browser scenario; on failure keep its screenshots and say where they are."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: `make browser` installs it (as root), or `sudo apt-get install chromium`",
                    pytrace=False)
    artifacts = LOG_DIR / "console-screenshots" / f"{request.node.name}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "CONSOLE_URL": api_url, "CONSOLE_ARTIFACTS": str(artifacts),
           **{f"CONSOLE_{key.upper()}": value for key, value in inputs.items()}}
    done = subprocess.run(["node", str(SCRIPT), name], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{done.stderr.strip()}\nscreenshots of each page: {artifacts}\n{done.stdout}", pytrace=False)
    shutil.rmtree(artifacts, ignore_errors=True)


@pytest.fixture(scope="module")
def operator(settings, engine):
    return make_operator(settings, engine, password="operator password 2")


@pytest.fixture(scope="module")
def worker(settings):
    process = start_worker(settings, name="console-worker", concurrency=1)
    yield process
    stop_all(process)


def inbox_state(owner_conn, event_id: str) -> tuple[str, str | None]:
    return owner_conn.execute("select state, reason from internal.webhook_inbox where id = %s",
                              (event_id,)).fetchone()


def test_an_operator_replays_a_rejected_event_and_watches_it_apply(settings, engine, owner_conn, api_server, worker,
                                                                   operator, request):
    """The inference backend called back before the result row was committed (an unknown task_id): rejected.
    Once the row exists, a replay from the console applies it through the worker like any other event."""
    user = create_user(settings, credits=5)
    task_id = str(uuid.uuid4())
    with httpx.Client(timeout=30) as client:
        accepted = post_event(client, api_server.url, event_body(task_id))
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    wait_for(lambda: inbox_state(owner_conn, event_id)[0] == "rejected", timeout=60, message="the event rejected")
    assert inbox_state(owner_conn, event_id)[1].startswith("unknown result")
    with unit_of_work(engine, user_caller(user.id)) as uow:
        uow.execute("insert into public.segmentation_results (id, source_image_url, text_prompt) "
                    "values (:id, 'https://img.example/in.png', 'a cat')", {"id": task_id})

    run_scenario("replay", api_server.url, request, email=operator.email, password=operator.password,
                 event_id=event_id)

    status, charges = owner_conn.execute(
        "select r.status::text, (select count(*) from public.usage_logs u where u.metadata ->> 'result_id' = %s) "
        "from public.segmentation_results r where r.id = %s", (task_id, task_id)).fetchone()
    assert (status, charges) == ("done", 1)
    [audit] = audit_rows(owner_conn, event_id)
    assert audit["action"] == "webhook.replay" and audit["before"]["reason"].startswith("unknown result")


def test_an_operator_grants_credits_and_sees_the_balance_change(settings, owner_conn, api_server, operator, request):
    user = create_user(settings, credits=7, email=f"grantee-{uuid.uuid4().hex[:8]}@example.com")
    run_scenario("grant", api_server.url, request, email=operator.email, password=operator.password,
                 user_email=user.email, credits_before="7", grant="25", credits_after="32")
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 32
    assert owner_conn.execute("select amount, reason from public.credit_grants where user_id = %s",
                              (user.id,)).fetchall() == [(25, "browser test goodwill")]


def test_a_non_operator_is_refused(settings, api_server, request):
    user = create_user(settings)
    run_scenario("refused", api_server.url, request, email=user.email, password=user.password)


def test_a_forged_csrf_token_is_refused_and_changes_nothing(settings, owner_conn, api_server, operator, request):
    user = create_user(settings, credits=3)
    run_scenario("csrf", api_server.url, request, email=operator.email, password=operator.password, user_id=user.id)
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 3
    assert owner_conn.execute("select count(*) from public.credit_grants where user_id = %s",
                              (user.id,)).fetchone()[0] == 0


def test_every_page_fits_a_phone(api_server, operator, request):
    run_scenario("phone", api_server.url, request, email=operator.email, password=operator.password)
