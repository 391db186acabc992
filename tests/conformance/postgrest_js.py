"""Run the postgrest-js integration suite (supabase/supabase-js `packages/core/postgrest-js/test`) against segbase.

The suite is not part of this repository. Bring supabase/supabase-js at the commit the docs name, point
`POSTGREST_JS_SUITE` at its `packages/core/postgrest-js` folder, and run

    POSTGREST_JS_SUITE=/path/to/supabase-js/packages/core/postgrest-js .venv/bin/python -m tests.conformance.postgrest_js

(or `pytest tests/conformance`, which skips when the variable is unset). The steps, and the only adaptations:
1. Install the suite's test tooling (jest, ts-jest, typescript, …) with npm into a folder beside the suite
   (the suite's own package.json uses pnpm catalogs npm cannot read) and link it as the suite's `node_modules`.
2. Create a database, migrate it with segbase's bootstrap and migrations, then load the suite's
   `test/supabase/migrations/*.sql` and `test/supabase/seed.sql` as the owner — without the PostGIS objects (the
   extension, the `shops` table and its row) and without the `alter role authenticator set pgrst.*` lines, which
   would change a role every stack on the server shares.
3. Start `segbase api` with `REST_SCHEMAS=public,personal` (the suite's `[api] schemas`) and
   `REST_AGGREGATES_ENABLED=true` (what its left-out `pgrst.db_aggregates_enabled` line asks), and in front of it on port
   54321 (the suite's hard-coded URL) a gateway that adds the anon key the way the Supabase CLI's gateway does.
4. Run jest as the suite's own script does (`--runInBand`, leaving `test/v12/` out), with a setup file that records
   which tests sent a request to the server; report passed/failed among those tests.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from api.tokens import api_key
from db.migrate import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.gateway import Gateway
from tests.support.processes import ApiProcess

HERE = Path(__file__).resolve().parent
SUITE_PORT = 54321
TOOLS = ["jest@30.4.2", "ts-jest@29.4.9", "typescript@5.8.3", "@types/jest@30.0.0", "@types/node@20.19.9",
         "@jest/types@30", "@jest/test-sequencer@30", "prettier@3.6.2", "zod@3.25.76", "type-fest@4",
         "tslib@2.8.1", "ts-node@10.9.2"]
LEFT_OUT = re.compile(r"postgis|\bshops\b|alter\s+role\s+authenticator\s+set\s+pgrst\.", re.IGNORECASE)


def suite_path() -> Path | None:
    value = os.environ.get("POSTGREST_JS_SUITE")
    return Path(value) if value else None


def sql_statements(text: str) -> list[str]:
    """Split a SQL script on `;` outside quotes, dollar quotes and comments."""
    statements, current, i = [], [], 0
    dollar: str | None = None
    quote: str | None = None
    while i < len(text):
        char = text[i]
        if dollar:
            if text.startswith(dollar, i):
                current.append(dollar)
                i += len(dollar)
                dollar = None
                continue
        elif quote:
            if char == quote:
                quote = None
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            current.append(text[i:end])
            i = end
            continue
        elif char in ("'", '"'):
            quote = char
        elif char == "$":
            match = re.match(r"\$[A-Za-z_]*\$", text[i:])
            if match:
                dollar = match.group(0)
                current.append(dollar)
                i += len(dollar)
                continue
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if "".join(current).strip():
        statements.append("".join(current).strip())
    return [s for s in statements if re.sub(r"--[^\n]*", "", s).strip()]


def adapted_sql(path: Path) -> str:
    kept = [s for s in sql_statements(path.read_text()) if not LEFT_OUT.search(re.sub(r"--[^\n]*", "", s))]
    return ";\n".join(kept) + ";\n"


def install_tools(suite: Path) -> None:
    tools = suite.parent / f".{suite.name}-segbase-tools"  # outside the suite's root, so jest never crawls it
    if not (tools / "node_modules" / ".bin" / "jest").exists():
        tools.mkdir(exist_ok=True)
        (tools / "package.json").write_text('{"name": "segbase-suite-tools", "private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *TOOLS], cwd=tools,
                       check=True)
    link = suite / "node_modules"
    if not link.exists():
        link.symlink_to(tools / "node_modules")


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name → first line of the failure
    offline_passed: int = 0
    offline_failed: list[str] = field(default_factory=list)

    @property
    def reaching(self) -> int:
        return len(self.passed) + len(self.failed)

    def summary(self) -> str:
        lines = [f"server-reaching tests: {len(self.passed)} passed, {len(self.failed)} failed of {self.reaching} "
                 f"({100 * len(self.passed) / max(self.reaching, 1):.1f}%)",
                 f"tests that never reach a server: {self.offline_passed} passed, "
                 f"{len(self.offline_failed)} failed"]
        lines += [f"  FAIL {name}: {reason}" for name, reason in sorted(self.failed.items())]
        lines += [f"  FAIL (no server) {name}" for name in self.offline_failed]
        return "\n".join(lines)


def run(suite: Path, *, jest_args: list[str] | None = None) -> Outcome:
    install_tools(suite)
    name = f"segbase_conf_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    api = None
    try:
        # the suite's server configuration: its `[api] schemas`, and the aggregates its schema file turns on
        # with `pgrst.db_aggregates_enabled` (as segbase settings of this process, not as role settings)
        settings = make_test_settings(url, f"conf{uuid.uuid4().hex[:6]}", rest_schemas=["public", "personal"],
                                      rest_aggregates_enabled=True, db_pool_size=5)
        migrate_serialised(settings)
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            for script in sorted((suite / "test" / "supabase" / "migrations").glob("*.sql")):
                conn.execute(adapted_sql(script))
            conn.execute(adapted_sql(suite / "test" / "supabase" / "seed.sql"))
            conn.execute("notify pgrst, 'reload schema'")
        api = ApiProcess(settings).start()
        with tempfile.TemporaryDirectory() as scratch, \
                Gateway(api.url, api_key(settings, "anon"), SUITE_PORT):
            return run_jest(suite / "node_modules" / ".bin" / "jest", suite, Path(scratch),
                            f"http://localhost:{SUITE_PORT}",
                            ["--testPathIgnorePatterns", "/node_modules/", "test/v12/", *(jest_args or [])],
                            report_variable="POSTGREST_JS_REPORT")
    finally:
        if api is not None:
            api.stop()
        drop_database(name)



def run_jest(jest: Path, cwd: Path, scratch: Path, suite_url: str, jest_args: list[str], *,
             report_variable: str) -> Outcome:
    """Run a client's jest suite against `suite_url`, recording which tests reached the server; jest's own report
    is kept where `report_variable` names a file (e.g. to read failure diffs)."""
    reached = scratch / "reached.txt"
    report = scratch / "report.json"
    env = {**os.environ, "SEGBASE_REACHED_LOG": str(reached), "SEGBASE_SUITE_URL": suite_url}
    subprocess.run([str(jest), "--runInBand", "--ci", "--setupFilesAfterEnv", str(HERE / "record_server_tests.js"),
                    "--json", "--outputFile", str(report), *jest_args], cwd=cwd, env=env, check=False)
    reaching = set(reached.read_text().splitlines()) if reached.exists() else set()
    if os.environ.get(report_variable):
        Path(os.environ[report_variable]).write_text(report.read_text())
    return outcome_of(json.loads(report.read_text()), reaching)

def outcome_of(report: dict, reaching: set[str]) -> Outcome:
    outcome = Outcome()
    for file in report["testResults"]:
        relative = Path(file["name"]).name
        for test in file["assertionResults"]:
            name = f"{relative} › {test['fullName']}"
            key = f"{relative}\t{test['fullName']}"
            passed = test["status"] == "passed"
            if test["status"] not in ("passed", "failed"):
                continue
            if key in reaching:
                if passed:
                    outcome.passed.append(name)
                else:
                    message = "\n".join(test.get("failureMessages") or [""])
                    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
                    outcome.failed[name] = first[:200]
            elif passed:
                outcome.offline_passed += 1
            else:
                outcome.offline_failed.append(name)
    return outcome


def main() -> int:
    suite = suite_path()
    if suite is None:
        print("set POSTGREST_JS_SUITE to supabase-js's packages/core/postgrest-js folder", file=sys.stderr)
        return 2
    outcome = run(suite, jest_args=sys.argv[1:])
    print(outcome.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
