"""Regenerate docs/console/*.png: a throw-away stack with a little traffic (jobs in every state, applied and rejected
webhooks, a grant, a replay), then the `docs` browser scenario (tests/console/browser.mjs) screenshots each page.

    .venv/bin/python -m tests.console.docs_screenshots      (or `make console-screenshots`)
"""
from __future__ import annotations

import os
import subprocess
import uuid

import httpx

from db import console as console_db
from db.engine import create_app_engine
from db.uow import Caller, unit_of_work
from tests.support.console import make_operator
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.factories import create_user
from tests.support.pipeline import event_body, post_event, start_worker, stop_all, submit_results, user_caller
from tests.support.processes import ROOT, ApiProcess, SegbaseProcess, wait_for

OUTPUT = ROOT / "docs" / "console"


def main() -> None:
    name = f"segbase_docs_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    settings = make_test_settings(url, f"docs{uuid.uuid4().hex[:6]}", inbox_sweep_enabled=False,
                                  console_stuck_after_seconds=1)
    processes = []
    engine = None
    try:
        migrate_serialised(settings)
        engine = create_app_engine(settings, pool_size=1)
        api = ApiProcess(settings).start()
        worker = start_worker(settings, concurrency=1)
        relay = SegbaseProcess(settings, "relay").start()
        processes = [api, worker, relay]
        operator = make_operator(settings, engine, email="ops@example.com", password="operator password")
        users = [create_user(settings, credits=credits, email=email) for credits, email in (
            (40, "ana@example.com"), (12, "bo@example.com"), (100, "chen@example.com"))]
        with httpx.Client(timeout=30) as client:
            for user in users:
                results = submit_results(engine, user, 4)
                for result_id in results[:2]:
                    post_event(client, api.url, event_body(result_id, "processing"))
                    post_event(client, api.url, event_body(result_id))
                post_event(client, api.url, event_body(results[2], "processing"))
            late_id = str(uuid.uuid4())
            rejected = [post_event(client, api.url, event_body(late_id)).json()["event_id"]]
            rejected += [post_event(client, api.url, event_body(str(uuid.uuid4()))).json()["event_id"]
                         for _ in range(2)]
        with unit_of_work(engine, Caller.service()) as uow:
            wait_for(lambda: all(console_db.get_inbox_event(uow=uow, event_id=e)["state"] == "rejected"
                                 for e in rejected), timeout=60, message="the unknown-task events rejected")
        with unit_of_work(engine, user_caller(users[0].id)) as uow:
            uow.execute("insert into public.segmentation_results (id, source_image_url, text_prompt) "
                        "values (:id, 'https://img.example/in.png', 'a red bicycle')", {"id": late_id})
        with unit_of_work(engine, Caller.service()) as uow:
            console_db.grant_credits(uow=uow, operator_id=operator.id, user_id=users[1].id, amount=20,
                                     reason="refund: three failed jobs on 2 Dec")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CONSOLE_URL": api.url, "CONSOLE_ARTIFACTS": str(OUTPUT),
               "CONSOLE_EMAIL": operator.email, "CONSOLE_PASSWORD": operator.password,
               "CONSOLE_EVENT_ID": rejected[0], "CONSOLE_USER_ID": users[1].id}
        subprocess.run(["node", str(ROOT / "tests" / "console" / "browser.mjs"), "docs"], cwd=ROOT, env=env,
                       check=True, timeout=300)
        print(f"wrote {', '.join(sorted(p.name for p in OUTPUT.glob('*.png')))} to {OUTPUT}")
    finally:
        stop_all(*processes)
        if engine is not None:
            engine.dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
