"""The bootstrap (db/bootstrap/*.sql): Supabase's roles with their attributes, schemas and default privileges;
re-running it (every `segbase migrate` does) changes nothing."""
from __future__ import annotations

import psycopg

from db.migrate import run_bootstrap
from db.urls import libpq_url
from tests.support.database import (
    CLUSTER_BOOTSTRAP_LOCK,
    PG_ADMIN_URL,
    create_database,
    drop_database,
    make_test_settings,
)

FINGERPRINT = """
    select jsonb_build_object(
      'roles', (select jsonb_object_agg(rolname, jsonb_build_array(rolcanlogin, rolinherit, rolbypassrls,
                  rolsuper, (select coalesce(jsonb_agg(g.rolname order by g.rolname), '[]') from pg_auth_members m
                             join pg_roles g on g.oid = m.roleid where m.member = r.oid)))
                from pg_roles r where rolname in ('anon', 'authenticated', 'service_role', 'authenticator',
                                                  'supabase_auth_admin')),
      'schemas', (select jsonb_object_agg(nspname, coalesce(nspacl::text[], '{}'))
                  from pg_namespace where nspname in ('public', 'auth', 'extensions', 'internal')),
      'default_acl', (select coalesce(jsonb_agg(defaclacl::text[] order by defaclobjtype), '[]')
                      from pg_default_acl where defaclnamespace = 'public'::regnamespace),
      'publication', (select count(*) from pg_publication where pubname = 'supabase_realtime'),
      'pgcrypto', (select extnamespace::regnamespace::text from pg_extension where extname = 'pgcrypto'))
"""


def test_roles_have_supabases_attributes(owner_conn) -> None:
    roles = dict(owner_conn.execute("""
        select rolname, jsonb_build_object('login', rolcanlogin, 'inherit', rolinherit, 'bypassrls', rolbypassrls,
                                           'super', rolsuper)
        from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')""").fetchall())
    assert roles["anon"] == {"login": False, "inherit": False, "bypassrls": False, "super": False}
    assert roles["authenticated"] == {"login": False, "inherit": False, "bypassrls": False, "super": False}
    assert roles["service_role"] == {"login": False, "inherit": False, "bypassrls": True, "super": False}
    assert roles["authenticator"] == {"login": True, "inherit": False, "bypassrls": False, "super": False}
    granted = {name for (name,) in owner_conn.execute("""
        select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid
        where m.member = 'authenticator'::regrole""").fetchall()}
    assert {"anon", "authenticated", "service_role"} <= granted


def test_schemas_extension_and_publication(owner_conn) -> None:
    fingerprint = owner_conn.execute(FINGERPRINT).fetchone()[0]
    assert fingerprint["pgcrypto"] == "extensions"
    assert fingerprint["publication"] == 1
    # Supabase's default privileges on public: new tables, functions and sequences go to the three API roles.
    default_acl = " ".join(" ".join(acl) for acl in fingerprint["default_acl"])
    for role in ("anon", "authenticated", "service_role"):
        assert f"{role}=arwdDxt/" in default_acl and f"{role}=X/" in default_acl


def test_bootstrap_runs_again_without_changing_anything(settings, owner_conn) -> None:
    before = owner_conn.execute(FINGERPRINT).fetchone()[0]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as lock_conn:
        lock_conn.execute("select pg_advisory_lock(%s)", (CLUSTER_BOOTSTRAP_LOCK,))
        run_bootstrap(owner_conn, settings)
    assert owner_conn.execute(FINGERPRINT).fetchone()[0] == before


def test_bootstrap_leaves_a_supabase_databases_own_objects_alone(run_id: str) -> None:
    """On a Supabase database `auth.uid()` and friends already exist: the bootstrap must not replace them."""
    name = f"segbase_t_{run_id}_guard"
    url = create_database(name)
    try:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("create schema auth; create function auth.uid() returns uuid language sql stable "
                         "as $$ select '00000000-0000-0000-0000-00000000beef'::uuid $$")
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as lock_conn:
                lock_conn.execute("select pg_advisory_lock(%s)", (CLUSTER_BOOTSTRAP_LOCK,))
                run_bootstrap(conn, make_test_settings(url, f"t{run_id}guard"))
            assert str(conn.execute("select auth.uid()").fetchone()[0]) == "00000000-0000-0000-0000-00000000beef"
            # what was missing was still added
            assert conn.execute("select to_regprocedure('auth.role()') is not null").fetchone()[0]
    finally:
        drop_database(name)
