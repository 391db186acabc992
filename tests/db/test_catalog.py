"""What the catalog promises: RLS on every public table, nothing reachable by anon/authenticated beyond an
explicit allow-list (internal objects never), policies in Supabase's style, an index under every policy column
and foreign key, and segmentation_results in the realtime publication.

When a migration legitimately exposes something new to anon or authenticated, add it to the allow-list here in
the same commit, so the exposure is a reviewed decision rather than a side effect of default privileges.
"""
from __future__ import annotations

import re

import pytest

CLIENT_ROLES = ("anon", "authenticated")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")

# Functions (outside extensions installed in `extensions`) that anon/authenticated may execute.
ALLOWED_FUNCTIONS = {
    (role, signature)
    for role in CLIENT_ROLES
    for signature in ("auth.uid()", "auth.role()", "auth.email()", "auth.jwt()")
} | {
    # the data API's RPCs (20261124005000_rest_rpc_functions.sql): security invoker, the caller's own rows only
    ("authenticated", "public.my_credit_summary()"),
    ("authenticated", "public.count_my_results(status segmentation_status)"),
} | {
    # Supabase Storage's policy helpers (db/bootstrap/30_storage.sql): immutable string functions
    (role, f"storage.{name}(name text)") for role in CLIENT_ROLES for name in ("foldername", "filename", "extension")
} | {
    # Supabase Realtime's schema (db/bootstrap/40_realtime.sql), as on Supabase: topic() reads the caller's own
    # claim; send()/broadcast_changes() insert into realtime.messages as the caller, so its RLS decides
    (role, signature) for role in CLIENT_ROLES for signature in (
        "realtime.topic()",
        "realtime.send(payload jsonb, event text, topic text, private boolean)",
        "realtime.broadcast_changes(topic_name text, event_name text, operation text, table_name text, "
        "table_schema text, new record, old record, level text)")
}

PUBLIC_TABLES = ("public.users_profile", "public.projects", "public.segmentation_results", "public.usage_logs",
                 "public.credit_grants")
ALLOWED_TABLE_PRIVILEGES = (
    {("anon", table, "SELECT") for table in PUBLIC_TABLES}
    | {("authenticated", table, "SELECT") for table in PUBLIC_TABLES}
    | {
        ("authenticated", "public.users_profile", "UPDATE(avatar_url, display_name)"),
        ("authenticated", "public.projects", "INSERT(description, id, name, user_id)"),
        ("authenticated", "public.projects", "UPDATE(description, id, name, user_id)"),
        ("authenticated", "public.projects", "DELETE"),
        ("authenticated", "public.segmentation_results",
         "INSERT(id, project_id, source_image_url, text_prompt, user_id)"),
        ("authenticated", "public.segmentation_results", "UPDATE(project_id)"),
        ("authenticated", "public.segmentation_results", "DELETE"),
    }
    # Supabase Storage's tables, as on Supabase: RLS on storage.* decides which rows (/storage/v1 runs as the caller)
    | {(role, f"storage.{table}", privilege) for role in CLIENT_ROLES for table in ("buckets", "objects")
       for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    # realtime.messages, as on Supabase: its RLS policies authorise private channels (read to receive, insert to send)
    | {(role, "realtime.messages", privilege) for role in CLIENT_ROLES for privilege in ("SELECT", "INSERT", "UPDATE")}
)

ALLOWED_SCHEMA_USAGE = {(role, schema) for role in CLIENT_ROLES
                        for schema in ("public", "auth", "extensions", "storage", "realtime")}


def test_every_public_table_has_rls_enabled_and_policies(owner_conn) -> None:
    tables = owner_conn.execute("""
        select c.relname, c.relrowsecurity, (select count(*) from pg_policy p where p.polrelid = c.oid)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p')""").fetchall()
    assert {name for name, _, _ in tables} >= {t.removeprefix("public.") for t in PUBLIC_TABLES}
    assert [name for name, rls, _ in tables if not rls] == []
    assert [name for name, _, policies in tables if policies == 0] == []


def test_functions_anon_and_authenticated_can_execute(owner_conn) -> None:
    rows = owner_conn.execute("""
        select r.role, format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               n.nspname,
               exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                       and d.deptype = 'e')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        cross join unnest(%s::text[]) as r(role)
        where n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'
          and has_function_privilege(r.role, p.oid, 'EXECUTE')""",
        (list(CLIENT_ROLES), list(SYSTEM_SCHEMAS))).fetchall()
    executable = {(role, signature) for role, signature, schema, from_extension in rows
                  if not (schema == "extensions" and from_extension)}
    assert executable == ALLOWED_FUNCTIONS, (
        "anon/authenticated can execute functions outside the allow-list (revoke execute ... from public, anon, "
        "authenticated) or the allow-list names functions that are gone")


def test_tables_anon_and_authenticated_can_reach(owner_conn) -> None:
    rows = owner_conn.execute("""
        select r.role, format('%%I.%%I', n.nspname, c.relname), priv.name,
               has_table_privilege(r.role, c.oid, priv.name),
               array(select a.attname::text from pg_attribute a
                     where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                       and priv.name in ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                       and has_column_privilege(r.role, c.oid, a.attnum, priv.name)
                     order by a.attname)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        cross join unnest(%s::text[]) as r(role)
        cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'])
          as priv(name)
        where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'
        """, (list(CLIENT_ROLES), list(SYSTEM_SCHEMAS))).fetchall()
    reachable = set()
    for role, table, privilege, whole_table, columns in rows:
        if whole_table:
            reachable.add((role, table, privilege))
        elif columns:
            reachable.add((role, table, f"{privilege}({', '.join(columns)})"))
    sequences = owner_conn.execute("""
        select r.role, format('%%I.%%I', n.nspname, c.relname)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        cross join unnest(%s::text[]) as r(role)
        where c.relkind = 'S' and n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'
          and has_sequence_privilege(r.role, c.oid, 'USAGE, SELECT, UPDATE')""",
                                   (list(CLIENT_ROLES), list(SYSTEM_SCHEMAS))).fetchall()
    reachable |= {(role, seq, "SEQUENCE") for role, seq in sequences}
    assert reachable == ALLOWED_TABLE_PRIVILEGES


def test_schemas_anon_and_authenticated_can_use(owner_conn) -> None:
    rows = owner_conn.execute("""
        select r.role, n.nspname, has_schema_privilege(r.role, n.oid, 'USAGE'),
               has_schema_privilege(r.role, n.oid, 'CREATE')
        from pg_namespace n cross join unnest(%s::text[]) as r(role)
        where n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'""",
                              (list(CLIENT_ROLES), list(SYSTEM_SCHEMAS))).fetchall()
    assert {(role, schema) for role, schema, usage, _ in rows if usage} == ALLOWED_SCHEMA_USAGE
    assert [(role, schema) for role, schema, _, create in rows if create] == []


def test_internal_objects_are_closed_even_without_the_schema_barrier(owner_conn) -> None:
    """Beyond schema USAGE: every internal function and table revokes EXECUTE/privileges from clients."""
    exposed = owner_conn.execute("""
        select r.role, p.oid::regprocedure::text from pg_proc p cross join unnest(array['public', 'anon',
          'authenticated']) as r(role)
        where p.pronamespace = 'internal'::regnamespace and r.role <> 'public'
          and has_function_privilege(r.role, p.oid, 'EXECUTE')
        union all
        select 'public', p.oid::regprocedure::text from pg_proc p
        where p.pronamespace = 'internal'::regnamespace
          and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE')
        union all
        select r.role, c.oid::regclass::text from pg_class c cross join unnest(array['anon', 'authenticated'])
          as r(role)
        where c.relnamespace = 'internal'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and (has_table_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               or has_any_column_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))
        """).fetchall()
    assert exposed == []


def test_security_definer_functions_pin_search_path_and_are_not_client_callable(owner_conn) -> None:
    rows = owner_conn.execute("""
        select p.oid::regprocedure::text, p.proconfig,
               has_function_privilege('anon', p.oid, 'EXECUTE') or has_function_privilege('authenticated', p.oid,
               'EXECUTE')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.prosecdef and n.nspname in ('public', 'internal')""").fetchall()
    assert "handle_new_user()" in {name for name, _, _ in rows}
    assert [name for name, config, _ in rows if not any(c.startswith("search_path=") for c in config or [])] == []
    assert [name for name, _, callable_by_clients in rows if callable_by_clients] == []


POLICY_COLUMN = re.compile(r"\(\s*SELECT auth\.uid\(\) AS uid\)\s*=\s*(\w+)|(\w+)\s*=\s*\(\s*SELECT auth\.uid\(\)")


def test_policies_follow_supabase_style(owner_conn) -> None:
    """One policy per command, to a named role, auth.uid() wrapped in a SELECT (advisor lint auth_rls_initplan)."""
    rows = owner_conn.execute("""
        select tablename, policyname, cmd, roles::text[], coalesce(qual, '') || ' ' || coalesce(with_check, '')
        from pg_policies where schemaname = 'public'""").fetchall()
    assert [p for _, p, cmd, _, _ in rows if cmd == "ALL"] == []
    assert [p for _, p, _, roles, _ in rows if roles == ["public"]] == []
    assert [p for _, p, _, _, expr in rows if re.search(r"(?<!SELECT )auth\.uid\(\)", expr)] == []
    per_command = [(t, cmd, tuple(roles)) for t, _, cmd, roles, _ in rows]
    assert len(per_command) == len(set(per_command)), "two permissive policies for one table, command and role"


def test_every_policy_column_and_foreign_key_is_indexed(owner_conn) -> None:
    leading = set(owner_conn.execute("""
        select c.relname, a.attname from pg_index i
        join pg_class c on c.oid = i.indrelid and c.relnamespace = 'public'::regnamespace
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]""").fetchall())
    needed = set()
    for table, expr in owner_conn.execute("""
            select tablename, coalesce(qual, '') || ' ' || coalesce(with_check, '')
            from pg_policies where schemaname = 'public'""").fetchall():
        for match in POLICY_COLUMN.finditer(expr):
            needed.add((table, match.group(1) or match.group(2)))
    needed |= set(owner_conn.execute("""
        select r.relname, a.attname from pg_constraint c
        join pg_class r on r.oid = c.conrelid
        join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
        where c.contype = 'f' and c.connamespace = 'public'::regnamespace""").fetchall())
    assert {("segmentation_results", "user_id"), ("segmentation_results", "project_id"),
            ("users_profile", "id")} <= needed
    assert sorted(needed - leading) == []


@pytest.mark.parametrize("table", ["segmentation_results"])
def test_realtime_publication_includes(owner_conn, table: str) -> None:
    assert owner_conn.execute("select count(*) from pg_publication_tables where pubname = 'supabase_realtime' "
                              "and schemaname = 'public' and tablename = %s", (table,)).fetchone()[0] == 1
