-- Why: the roles Supabase has in every project, created only where missing, so a real Supabase database is left
-- as it is. The API logs in as `authenticator` (NOINHERIT) and `SET LOCAL ROLE`s per request, like PostgREST.
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin nologin noinherit createrole;
  end if;
  -- The password is set only here, when the role is created: the role is cluster-wide, so another stack (or a test
  -- run) migrating its own database on the same server must never change it under the running processes. Change it
  -- on purpose with `segbase migrate --rotate-authenticator-password`. The setting holds a SCRAM verifier computed
  -- by the client (db/migrate.py), never the password itself.
  if not exists (select from pg_roles where rolname = 'authenticator') then
    execute format('create role authenticator login noinherit password %L',
                   nullif(current_setting('segbase.authenticator_password', true), ''));
    comment on role authenticator is 'segbase: API login role';
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;
-- Our /auth/v1 endpoints run in the API process, so they reach `auth.*` by SET LOCAL ROLE, as GoTrue's own login
-- role would. No JWT can select this role: the API maps tokens only to anon/authenticated/service_role.
grant supabase_auth_admin to authenticator;
