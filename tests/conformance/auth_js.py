"""Run the auth-js integration suite (supabase/supabase-js `packages/core/auth-js/test`) against segbase.

The suite is not part of this repository. Bring supabase/supabase-js at the commit docs/AUTH.md names, point
`AUTH_JS_SUITE` at its `packages/core/auth-js` folder (the checkout's root must hold `tsconfig.base.json`), and run

    AUTH_JS_SUITE=/path/to/supabase-js/packages/core/auth-js .venv/bin/python -m tests.conformance.auth_js

(or `pytest tests/conformance/test_auth_js.py`, which skips when the variable is unset). The steps, and the only
adaptations:
1. Install the suite's test tooling (jest, ts-jest, typescript, jsonwebtoken, faker, …) with npm into a folder
   beside the suite (its package.json uses pnpm catalogs npm cannot read) and link it as the suite's `node_modules`.
2. Copy the suite (and the checkout's `tsconfig.base.json`) to a scratch folder and change two things in
   `test/lib/clients.ts`: its URL (step 3), and its API keys and its `supabase_admin` token are signed HS256 with the suite's own
   `GOTRUE_JWT_SECRET` instead of the RSA key the Supabase CLI would generate (segbase signs with one HS256
   secret; the claims are the suite's).
3. Create a database, migrate it, and start `segbase api` with the suite's settings (`test/supabase/config.toml`:
   its JWT secret, site URL and redirect URLs, minimum password length 6, email max frequency 1 s, autoconfirm on,
   manual linking off)
   and, on a free port, the gateway that adds the apikey the Supabase CLI's gateway adds to requests that carry
   none (`tests/support/gateway.py`); the suite's URL (`http://127.0.0.1:54321/auth/v1` in `test/lib/clients.ts`)
   is pointed at that gateway.
4. Run jest with the suite's CLI config (`jest.config.cli.js`, `--runInBand`), leaving out the files whose subject
   is out of scope (passkeys/WebAuthn, the browser-only files) and the docker-only folder, with a setup file that
   records which tests sent a request to the server; report passed/failed among those tests, each failure with
   its first line, and mark the failures whose subject is out of scope (MFA, anonymous sign-in, SSO, phone, the
   OAuth-server admin endpoints, passkeys, web3).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from api.tokens import api_key
from tests.conformance.postgrest_js import Outcome, run_jest
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.gateway import Gateway
from tests.support.processes import ApiProcess, free_port

HERE = Path(__file__).resolve().parent
SUITE_URL_LINE = "export const GOTRUE_URL_SIGNUP_ENABLED_AUTO_CONFIRM_ON = 'http://127.0.0.1:54321/auth/v1'"
SUITE_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # test/supabase/config.toml
TOOLS = ["jest@30.4.2", "ts-jest@29.4.9", "typescript@5.8.3", "@types/jest@30.0.0", "@types/node@22.15.30",
         "prettier@3.6.2", "tslib@2.8.1", "jsonwebtoken@9.0.2", "@types/jsonwebtoken@8.5.9",
         "@faker-js/faker@9.9.0", "jest-mock-server@0.1.0"]
LEFT_OUT_FILES = ["/node_modules/", "/docker-tests/", "/example/", "passkey", "webauthn", r"\.browser\.test\.ts$"]
# Subjects the issue leaves out (MFA, passkeys, SSO, anonymous sign-in, the OAuth-server admin endpoints), and those
# segbase does not serve at all (phone, web3, asymmetric signing keys).
OUT_OF_SCOPE = re.compile(r"mfa|factor|anonymous|\bsso\b|phone|passkey|webauthn|web3|ethereum|solana|oauth admin|"
                          r"oauth server|oauth client|customProviders|custom provider|\baal\b|RS256", re.IGNORECASE)
KEYS_BLOCK = re.compile(r"// Load RSA private key.*?\nconst AUTH_ADMIN_JWT = jwt\.sign\(.*?\n\)\n", re.DOTALL)
HS256_KEYS = """// segbase: keys signed HS256 with the suite's GOTRUE_JWT_SECRET (segbase has no RSA signing keys)
export const SUPABASE_PUBLISHABLE_KEY = jwt.sign(
  { iss: 'supabase-demo', role: 'anon', exp: 1983812996, iat: 1768925145 }, GOTRUE_JWT_SECRET, { algorithm: 'HS256' })
export const SUPABASE_SECRET_KEY = jwt.sign(
  { iss: 'supabase-demo', role: 'service_role', exp: 1983812996, iat: 1768925145 }, GOTRUE_JWT_SECRET,
  { algorithm: 'HS256' })
const AUTH_ADMIN_JWT = jwt.sign({ sub: '1234567890', role: 'supabase_admin' }, GOTRUE_JWT_SECRET,
  { algorithm: 'HS256' })
"""


def suite_path() -> Path | None:
    value = os.environ.get("AUTH_JS_SUITE")
    return Path(value) if value else None


def install_tools(suite: Path) -> Path:
    tools = suite.parent / f".{suite.name}-segbase-tools"  # outside the suite's root, so jest never crawls it
    if not (tools / "node_modules" / ".bin" / "jest").exists():
        tools.mkdir(exist_ok=True)
        (tools / "package.json").write_text('{"name": "segbase-suite-tools", "private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *TOOLS], cwd=tools,
                       check=True)
    return tools / "node_modules"


def adapted_copy(suite: Path, scratch: Path, node_modules: Path, url: str) -> Path:
    """The suite in `scratch` (same relative layout, so `../../../tsconfig.base.json` resolves), pointed at `url`,
    keys adapted."""
    root = scratch / "supabase-js"
    target = root / "packages" / "core" / "auth-js"
    shutil.copytree(suite, target, ignore=shutil.ignore_patterns("node_modules", "coverage", "dist"))
    shutil.copy(suite.parents[2] / "tsconfig.base.json", root / "tsconfig.base.json")
    (target / "node_modules").symlink_to(node_modules)
    clients = target / "test" / "lib" / "clients.ts"
    text = clients.read_text()
    adapted, count = KEYS_BLOCK.subn(HS256_KEYS, text)
    if count != 1:
        raise RuntimeError("test/lib/clients.ts changed shape: its RSA key block was not found (wrong commit?)")
    if SUITE_URL_LINE not in adapted:
        raise RuntimeError("test/lib/clients.ts changed shape: its server URL line was not found (wrong commit?)")
    clients.write_text(adapted.replace(SUITE_URL_LINE, f"export const GOTRUE_URL_SIGNUP_ENABLED_AUTO_CONFIRM_ON = "
                                                      f"'{url}/auth/v1'"))
    return target


def run(suite: Path, *, jest_args: list[str] | None = None) -> Outcome:
    node_modules = install_tools(suite)
    name = f"segbase_authjs_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    api = None
    port = free_port()  # the suite's 54321 is the development stack's port: the URL is one of the adaptations
    suite_url = f"http://127.0.0.1:{port}"
    try:
        settings = make_test_settings(
            url, f"authjs{uuid.uuid4().hex[:6]}", jwt_secret=SUITE_JWT_SECRET, api_external_url=suite_url, auth_site_url="http://127.0.0.1:3000",
            auth_redirect_allow_list=["https://127.0.0.1:3000", "http://localhost:5173"],
            auth_password_min_length=6, auth_email_max_frequency_seconds=1, auth_rate_limit_email_sent=100_000,
            auth_rate_limit_user=10_000, auth_manual_linking_enabled=False, db_pool_size=5)
        migrate_serialised(settings)
        api = ApiProcess(settings).start()
        with tempfile.TemporaryDirectory() as scratch, Gateway(api.url, api_key(settings, "anon"), port):
            target = adapted_copy(suite, Path(scratch), node_modules, suite_url)
            return run_jest(node_modules / ".bin" / "jest", target, Path(scratch), suite_url,
                            ["--config", "jest.config.cli.js", "--coverage=false", "--testPathIgnorePatterns",
                             *LEFT_OUT_FILES, *(jest_args or [])], report_variable="AUTH_JS_REPORT")
    finally:
        if api is not None:
            api.stop()
        drop_database(name)


def in_scope_failures(outcome: Outcome) -> dict[str, str]:
    return {name: reason for name, reason in outcome.failed.items() if not OUT_OF_SCOPE.search(name)}


def summary(outcome: Outcome) -> str:
    out_of_scope = len(outcome.failed) - len(in_scope_failures(outcome))
    return (outcome.summary() + f"\nof the failures, {out_of_scope} are out of scope (MFA, anonymous sign-in, SSO, "
            f"phone, OAuth server, passkeys, web3) and {len(in_scope_failures(outcome))} in scope")


def main() -> int:
    suite = suite_path()
    if suite is None:
        print("set AUTH_JS_SUITE to supabase-js's packages/core/auth-js folder", file=sys.stderr)
        return 2
    print(summary(run(suite, jest_args=sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
