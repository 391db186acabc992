"""Run supabase-py's realtime tests (supabase/supabase-py `src/realtime/tests`) against segbase.

The suite is not part of this repository. Bring supabase/supabase-py at commit 602765fb, point
`REALTIME_PY_SUITE` at its `src/realtime` folder, and run

    REALTIME_PY_SUITE=/path/to/supabase-py/src/realtime .venv/bin/python -m tests.conformance.realtime_py

(or `pytest tests/conformance`, which skips when the variable is unset). The steps — the suite's files are used
unchanged:
1. Install the suite's own test dependencies that segbase does not pin (aiohttp), and pytest-timeout (a test that
   waits forever fails after 60 s instead of hanging the run), with pip into a scratch folder put on PYTHONPATH;
   the realtime client itself is segbase's pinned one (realtime 2.34.1, from supabase-py 2.34.1).
2. Create a database, migrate it with segbase's bootstrap and migrations, then load the suite's
   `infra/supabase/migrations/*.sql` and `infra/supabase/seed.sql` as the owner, with `extensions` on the search
   path and the `uuid-ossp` extension a hosted Supabase project has (the migration calls `uuid_generate_v4()`).
3. Start `segbase api` and `segbase relay` on that database, and run the suite's pytest with its own settings:
   `SUPABASE_URL` (the API) and `SUPABASE_PUBLISHABLE_KEY` (the anon key); sign-ups are confirmed at once, as on a
   local Supabase.
4. Report passed/failed/skipped from pytest's JUnit XML.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from api.tokens import api_key
from db.migrate import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.processes import ApiProcess, SegbaseProcess

SUITE_COMMIT = "602765fb"
SUITE_ONLY_DEPENDENCIES = ["aiohttp>=3.12.13"]
# The runner's own: a test that waits forever (a mocked socket that never answers) fails instead of hanging.
RUNNER_DEPENDENCIES = ["pytest-timeout"]
TEST_TIMEOUT_SECONDS = 60


def suite_path() -> Path | None:
    value = os.environ.get("REALTIME_PY_SUITE")
    return Path(value) if value else None


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"supabase-py realtime tests ({SUITE_COMMIT}): {len(self.passed)} passed, {len(self.failed)} failed, "
                 f"{len(self.skipped)} skipped"]
        lines += [f"  FAIL {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


def load_suite_sql(conn: psycopg.Connection, suite: Path) -> None:
    conn.execute('create extension if not exists "uuid-ossp" with schema extensions')
    conn.execute("set search_path = public, extensions")
    for script in sorted((suite / "infra" / "supabase" / "migrations").glob("*.sql")):
        conn.execute(script.read_text())
    seed = suite / "infra" / "supabase" / "seed.sql"
    if seed.exists() and seed.read_text().strip():
        conn.execute(seed.read_text())
    conn.execute("notify pgrst, 'reload schema'")


def outcome_of(report: Path) -> Outcome:
    outcome = Outcome()
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{Path(case.get('file') or case.get('classname', '')).name}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome.failed[name] = (problem.get("message") or "").splitlines()[0][:200] if problem.get("message") \
                else ""
        elif case.find("skipped") is not None:
            outcome.skipped.append(name)
        else:
            outcome.passed.append(name)
    return outcome


def run(suite: Path, pytest_args: list[str] | None = None) -> Outcome:
    name = f"segbase_rtpy_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    processes: list = []
    try:
        settings = make_test_settings(url, f"rtpy{uuid.uuid4().hex[:6]}", db_pool_size=5)
        migrate_serialised(settings)
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            load_suite_sql(conn, suite)
        api = ApiProcess(settings).start()
        processes.append(api)
        relay = SegbaseProcess(settings, "relay").start()
        processes.append(relay)
        with tempfile.TemporaryDirectory() as scratch:
            deps = Path(scratch) / "deps"
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                   str(deps)]
            subprocess.run([*pip, *SUITE_ONLY_DEPENDENCIES], check=True)
            subprocess.run([*pip, "--no-deps", *RUNNER_DEPENDENCIES], check=True)  # not a second pytest
            report = Path(scratch) / "report.xml"
            env = {**os.environ, "SUPABASE_URL": api.url, "SUPABASE_PUBLISHABLE_KEY": api_key(settings, "anon"),
                   "PYTHONPATH": str(deps)}
            env.pop("SUPABASE_TEST_EMAIL", None)
            subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
                            f"--timeout={TEST_TIMEOUT_SECONDS}",
                            "--rootdir", str(suite), "-c", str(suite / "pyproject.toml"), f"--junitxml={report}",
                            str(suite / "tests"), *(pytest_args or [])], cwd=scratch, env=env, check=False)
            return outcome_of(report)
    finally:
        for process in reversed(processes):
            process.stop()
        drop_database(name)


def main() -> int:
    suite = suite_path()
    if suite is None:
        print("set REALTIME_PY_SUITE to supabase-py's src/realtime folder (commit 602765fb)", file=sys.stderr)
        return 2
    outcome = run(suite, sys.argv[1:])
    print(outcome.summary())
    return 0 if not outcome.failed else 1


if __name__ == "__main__":
    sys.exit(main())
