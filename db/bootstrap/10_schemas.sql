-- Why: the `extensions` and `auth` schemas Supabase provides, and Supabase's default privileges on `public`.
create schema if not exists extensions;
create extension if not exists pgcrypto with schema extensions;
grant usage on schema extensions to anon, authenticated, service_role;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role, supabase_auth_admin;

grant usage on schema public to anon, authenticated, service_role;
-- PostgreSQL 15 no longer lets PUBLIC create objects in `public`, but a cluster upgraded from an older major keeps
-- the old grant; no client role may ever create objects in the exposed schema. (A no-op where it is already so.)
revoke create on schema public from public;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;

do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
