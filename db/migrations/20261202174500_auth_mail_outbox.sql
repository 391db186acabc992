-- Why: /auth/v1's email flows (confirmation, magic link, recovery, invite, email change) need one-time tokens and
-- mails that are never lost nor sent from inside a request. A token and its mail are written in one transaction
-- by the API (as supabase_auth_admin); a worker (as service_role) sends the mail after commit and blanks its body.
-- Tokens are stored only as keyed hashes (docs/AUTH.md, "Email flows").

grant usage on schema internal to supabase_auth_admin;

create table if not exists internal.auth_email_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null check (kind in ('signup', 'invite', 'magiclink', 'recovery', 'email_change')),
  link_hash text not null unique,  -- HMAC of the link's token_hash
  otp_hash text not null,          -- HMAC of the address and the 6-digit code
  email text not null,             -- where it was sent (the new address for an email change)
  redirect_to text,                -- already checked against AUTH_SITE_URL / AUTH_REDIRECT_ALLOW_LIST
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index if not exists auth_email_tokens_user_kind on internal.auth_email_tokens (user_id, kind);
create index if not exists auth_email_tokens_otp on internal.auth_email_tokens (otp_hash);
comment on table internal.auth_email_tokens is
  'One-time email tokens of /auth/v1 (single use: deleted when verified; one live token per user and kind).';
alter table internal.auth_email_tokens enable row level security;
revoke all on internal.auth_email_tokens from public, anon, authenticated, service_role;
grant select, insert, update, delete on internal.auth_email_tokens to supabase_auth_admin;  -- update: for `select … for update`
drop policy if exists auth_email_tokens_auth_admin on internal.auth_email_tokens;
create policy auth_email_tokens_auth_admin on internal.auth_email_tokens for all to supabase_auth_admin
  using (true) with check (true);

create table if not exists internal.mail_outbox (
  id uuid primary key default gen_random_uuid(),
  message_id text not null unique,     -- the Message-ID every send attempt of this row carries
  kind text not null,
  recipient text not null,
  recipient_hash text not null,        -- SHA-256 of the address: the per-address send limit
  subject text not null,
  body_text text not null,             -- blanked once sent
  body_html text not null,             -- blanked once sent
  created_at timestamptz not null default now(),
  available_at timestamptz not null default now(),  -- when the sweeper may queue it (again)
  attempts integer not null default 0,
  last_error text,
  sent_at timestamptz,
  failed_at timestamptz                -- given up after the attempt budget
);
create index if not exists mail_outbox_unsent on internal.mail_outbox (available_at) where sent_at is null and failed_at is null;
create index if not exists mail_outbox_recipient on internal.mail_outbox (recipient_hash, created_at);
create index if not exists mail_outbox_created on internal.mail_outbox (created_at);
comment on table internal.mail_outbox is
  'Mails of /auth/v1, written with their token; sent by the worker after commit (idempotent per row, one Message-ID).';
alter table internal.mail_outbox enable row level security;
revoke all on internal.mail_outbox from public, anon, authenticated;
grant select, insert on internal.mail_outbox to supabase_auth_admin;
grant select, update, delete on internal.mail_outbox to service_role;
drop policy if exists mail_outbox_auth_admin on internal.mail_outbox;
create policy mail_outbox_auth_admin on internal.mail_outbox for all to supabase_auth_admin
  using (true) with check (true);
