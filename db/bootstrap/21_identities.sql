-- Why: GoTrue's `auth.identities` (a user's sign-in methods: email, google, apple…) and `auth.flow_state` (OAuth
-- and PKCE flows in progress), and the `auth.users` columns the email flows use — in GoTrue's names and shapes
-- (supabase/auth `migrations/`), created only where missing: a hosted Supabase project already has them.
create table if not exists auth.identities (
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  email text generated always as (lower(identity_data ->> 'email')) stored,
  id uuid not null default gen_random_uuid() primary key,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);
create index if not exists identities_email_idx on auth.identities (email text_pattern_ops);

do $$
begin
  create type auth.code_challenge_method as enum ('s256', 'plain');
exception when duplicate_object then null;
end
$$;
create table if not exists auth.flow_state (
  id uuid primary key,
  user_id uuid,
  auth_code text,
  code_challenge_method auth.code_challenge_method,
  code_challenge text,
  provider_type text not null,
  provider_access_token text,
  provider_refresh_token text,
  created_at timestamptz,
  updated_at timestamptz,
  authentication_method text not null,
  auth_code_issued_at timestamptz,
  invite_token text,
  referrer text,
  oauth_client_state_id uuid,
  linking_target_id uuid,
  email_optional boolean not null default false
);
create index if not exists idx_auth_code on auth.flow_state (auth_code);
create index if not exists idx_user_id_auth_method on auth.flow_state (user_id, authentication_method);
create index if not exists flow_state_created_at_idx on auth.flow_state (created_at desc);

do $$
begin
  if (select relowner from pg_class where oid = 'auth.identities'::regclass) = (select oid from pg_roles where rolname = current_user) then
    alter table auth.identities owner to supabase_auth_admin;
  end if;
  if (select relowner from pg_class where oid = 'auth.flow_state'::regclass) = (select oid from pg_roles where rolname = current_user) then
    alter table auth.flow_state owner to supabase_auth_admin;
    alter type auth.code_challenge_method owner to supabase_auth_admin;
  end if;
end
$$;

-- Columns of GoTrue's auth.users that the email flows (invite, recovery, email change) write. Added only where
-- missing; skipped with a notice where the owner cannot alter the table (a hosted Supabase database has them).
do $$
begin
  alter table auth.users add column if not exists invited_at timestamptz;
  alter table auth.users add column if not exists recovery_sent_at timestamptz;
  alter table auth.users add column if not exists email_change varchar(255);
  alter table auth.users add column if not exists email_change_sent_at timestamptz;
  alter table auth.users add column if not exists is_sso_user boolean not null default false;
exception when insufficient_privilege then
  raise notice 'segbase: cannot add GoTrue''s email-flow columns to auth.users (%)', sqlerrm;
end
$$;
