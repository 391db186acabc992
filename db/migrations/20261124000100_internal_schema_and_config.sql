-- Why: a schema for what only the pipeline uses (inbox, outbox, config, charging functions), never served by the
-- data API, and the config table `segbase migrate` fills from Settings so SQL never repeats a setting as a literal.
create schema if not exists internal;
revoke all on schema internal from public, anon, authenticated;
grant usage on schema internal to service_role;

create table if not exists internal.config (
  key text primary key,
  value jsonb not null
);
comment on table internal.config is 'Settings SQL needs (prices, starting credits, retention), written by segbase migrate.';
alter table internal.config enable row level security;
revoke all on internal.config from public, anon, authenticated;
grant select on internal.config to service_role;

create or replace function internal.config_int(config_key text) returns bigint
language sql stable
set search_path = ''
as $$
  select (value #>> '{}')::bigint from internal.config where key = config_key
$$;
comment on function internal.config_int(text) is 'An integer setting from internal.config (null when unset).';
revoke execute on function internal.config_int(text) from public, anon, authenticated;
grant execute on function internal.config_int(text) to service_role;
