-- Why: GoTrue's tables (its column names, for what segbase's /auth/v1 uses) and the `auth.*()` helpers reading
-- `request.jwt.claims` as Supabase does. Everything is created only where missing.
create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  confirmation_sent_at timestamptz,
  phone text default null,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz,
  updated_at timestamptz,
  last_sign_in_at timestamptz,
  banned_until timestamptz,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
create unique index if not exists users_email_partial_key on auth.users (email) where is_anonymous is false;

create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz,
  updated_at timestamptz,
  aal text,
  not_after timestamptz,
  refreshed_at timestamp,
  user_agent text,
  ip inet
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.refresh_tokens (
  instance_id uuid,
  id bigserial primary key,
  token varchar(255) unique,     -- segbase stores a SHA-256 of the token here, never the token itself
  user_id varchar(255),
  revoked boolean,
  created_at timestamptz,
  updated_at timestamptz,
  parent varchar(255),
  session_id uuid references auth.sessions (id) on delete cascade
);
create index if not exists refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);
create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);

do $$
begin
  if (select relowner from pg_class where oid = 'auth.users'::regclass) = (select oid from pg_roles where rolname = current_user) then
    alter table auth.users owner to supabase_auth_admin;
    alter table auth.sessions owner to supabase_auth_admin;
    alter table auth.refresh_tokens owner to supabase_auth_admin;
    alter sequence auth.refresh_tokens_id_seq owner to supabase_auth_admin;
  end if;
end
$$;
grant select on auth.users to service_role;

do $$
begin
  if not exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'auth' and p.proname = 'uid') then
    create function auth.uid() returns uuid language sql stable as $fn$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $fn$;
  end if;
  if not exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'auth' and p.proname = 'role') then
    create function auth.role() returns text language sql stable as $fn$
      select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $fn$;
  end if;
  if not exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'auth' and p.proname = 'email') then
    create function auth.email() returns text language sql stable as $fn$
      select coalesce(
        nullif(current_setting('request.jwt.claim.email', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
      )::text
    $fn$;
  end if;
  if not exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'auth' and p.proname = 'jwt') then
    create function auth.jwt() returns jsonb language sql stable as $fn$
      select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $fn$;
  end if;
end
$$;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to anon, authenticated, service_role;

-- segbase's /auth/v1 stores only a SHA-256 of each refresh token. To honour GoTrue's parent exception (a client that
-- lost a refresh response retries with the parent and gets the SAME child back), each child is also kept sealed
-- with AES-GCM under a key derived from its parent token: only a holder of the parent can open it, a database dump
-- alone reveals no usable token. Added only where missing; where the owner cannot alter GoTrue's table (a hosted
-- Supabase database, whose users sign in through its own Auth: AUTH_EXTERNAL_JWT_SECRET) it is skipped with a notice.
do $$
begin
  if not exists (select from information_schema.columns
                 where table_schema = 'auth' and table_name = 'refresh_tokens'
                   and column_name = 'segbase_sealed_token') then
    alter table auth.refresh_tokens add column if not exists segbase_sealed_token bytea;
    comment on column auth.refresh_tokens.segbase_sealed_token is
      'segbase: this token sealed (AES-GCM) with a key derived from its parent token; never the token in clear.';
  end if;
exception when insufficient_privilege then
  raise notice 'segbase: cannot add auth.refresh_tokens.segbase_sealed_token (%), parent exception limited', sqlerrm;
end
$$;
