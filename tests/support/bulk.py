"""Bulk data for the list-query plan test and bench/rest_list.py: many users, many results, loaded in SQL.

The load runs as the owner with `session_replication_role = replica`, which skips triggers and FK checks for this
one transaction: the other surfaces' per-row triggers (sign-up profile, credit reservation, outbox) would turn a
one-second generate_series into minutes, and the rows written here are consistent by construction.
"""
from __future__ import annotations

import psycopg

LOAD_SQL = ["""
insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, raw_app_meta_data,
                        raw_user_meta_data, created_at, updated_at, is_anonymous)
select gen_random_uuid(), 'authenticated', 'authenticated', 'bulk-' || g || '-' || %(tag)s || '@example.com', '',
       now(), '{"provider":"email","providers":["email"]}', '{}', now(), now(), false
from generate_series(1, %(users)s) g
""", """
insert into public.users_profile (id, display_name, tier, credits)
select id, email, 'free', 100 from auth.users where email like 'bulk-%%-' || %(tag)s || '@example.com'
""", """
insert into public.segmentation_results (user_id, source_image_url, text_prompt, status, created_at, updated_at)
select p.id, 'https://img.example/' || p.id || '/' || g || '.png', 'prompt ' || g,
       (array['pending','processing','done','error']::public.segmentation_status[])[1 + g %% 4],
       now() - make_interval(mins => g + (random() * 100000)::int), now()
from public.users_profile p cross join generate_series(1, %(per_user)s) g
where p.display_name like 'bulk-%%-' || %(tag)s || '@example.com'
"""]


def load_results(conn: psycopg.Connection, *, users: int, per_user: int, tag: str) -> None:
    """Insert `users` users (profiles included) with `per_user` results each, then ANALYZE."""
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        for statement in LOAD_SQL:
            conn.execute(statement, {"users": users, "per_user": per_user, "tag": tag})
    conn.execute("analyze auth.users")
    conn.execute("analyze public.users_profile")
    conn.execute("analyze public.segmentation_results")


def bulk_user_ids(conn: psycopg.Connection, tag: str, limit: int) -> list[str]:
    rows = conn.execute("select id::text from public.users_profile where display_name like %s order by id limit %s",
                        (f"bulk-%-{tag}@example.com", limit)).fetchall()
    return [row[0] for row in rows]


PROJECTS_SQL = ["""
insert into public.projects (user_id, name)
select p.id, 'project ' || g || ' of ' || p.display_name
from public.users_profile p cross join generate_series(1, %(per_user)s) g
where p.display_name like 'bulk-%%-' || %(tag)s || '@example.com'
""", """
update public.segmentation_results r set project_id = (
  select pr.id from public.projects pr where pr.user_id = r.user_id
  order by pr.id offset (abs(hashtext(r.id::text)) %% %(per_user)s) limit 1)
where r.user_id in (select id from public.users_profile where display_name like 'bulk-%%-' || %(tag)s || '@example.com')
"""]


def load_projects(conn: psycopg.Connection, *, per_user: int, tag: str) -> None:
    """Give each bulk user `per_user` projects and spread their results over them, then ANALYZE."""
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        for statement in PROJECTS_SQL:
            conn.execute(statement, {"per_user": per_user, "tag": tag})
    conn.execute("analyze public.projects")
    conn.execute("analyze public.segmentation_results")
