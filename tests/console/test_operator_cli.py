"""`segbase operator grant|revoke EMAIL`, run as an operator runs it (a `segbase` process with the deployment's
settings)."""
from __future__ import annotations

from tests.ops.test_health_and_status import run_segbase
from tests.support.console import audit_rows
from tests.support.factories import create_user


def test_grant_then_revoke_sets_the_role_and_audits_as_the_cli(settings, owner_conn):
    user = create_user(settings)
    granted = run_segbase(settings, "operator", "grant", user.email.upper())
    assert granted.returncode == 0, granted.stderr
    assert "is now an operator" in granted.stdout and "/console" in granted.stdout
    role = owner_conn.execute("select raw_app_meta_data ->> 'segbase_role' from auth.users where id = %s",
                              (user.id,)).fetchone()[0]
    assert role == "operator"
    again = run_segbase(settings, "operator", "grant", user.email)
    assert again.returncode == 0 and "already" in again.stdout
    revoked = run_segbase(settings, "operator", "revoke", user.email)
    assert revoked.returncode == 0 and "no longer an operator" in revoked.stdout
    assert [(row["actor"], row["action"]) for row in audit_rows(owner_conn, user.id)] == [
        ("cli", "operator.grant"), ("cli", "operator.revoke")]


def test_an_unknown_email_is_a_clear_error(settings):
    done = run_segbase(settings, "operator", "grant", "nobody-at-all@example.com")
    assert done.returncode == 1
    assert "no user with email nobody-at-all@example.com" in done.stderr and "Traceback" not in done.stderr
