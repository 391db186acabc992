-- Why: every operator action (console or `segbase operator`) leaves a row saying who did what to which object,
-- with the state before and after, written in the same transaction as the action by the SQL function that does
-- it: an action that commits is audited, an action that rolls back leaves no audit row. Rows are never changed.
create table if not exists internal.operator_audit (
  id bigint generated always as identity primary key,
  operator_id uuid,
  operator_email text,
  actor text not null constraint operator_audit_actor check (actor in ('console', 'cli')),
  action text not null,
  target_kind text not null,
  target_id text,
  before jsonb,
  after jsonb,
  reason text,
  created_at timestamptz not null default now()
);
comment on table internal.operator_audit is
  'Append-only log of operator actions (console and CLI): who, what, which object, before/after, why, when.';
comment on column internal.operator_audit.operator_id is
  'The operator''s auth.users id (no foreign key: the history outlives the account); null for the CLI.';
comment on column internal.operator_audit.operator_email is 'The operator''s email when the action was taken.';
comment on column internal.operator_audit.actor is 'console (a signed-in operator) or cli (`segbase operator`, run by whoever holds the database).';

create index if not exists operator_audit_created_at_idx on internal.operator_audit (created_at);
create index if not exists operator_audit_target_idx on internal.operator_audit (target_kind, target_id);

alter table internal.operator_audit enable row level security;
revoke all on internal.operator_audit from public, anon, authenticated;
grant select on internal.operator_audit to service_role;

create or replace function internal.refuse_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = '42501', message = 'operator_audit rows are never changed or deleted';
end
$$;
comment on function internal.refuse_audit_change() is 'BEFORE UPDATE/DELETE on internal.operator_audit: the log is append-only.';
revoke execute on function internal.refuse_audit_change() from public, anon, authenticated;

drop trigger if exists operator_audit_append_only on internal.operator_audit;
create trigger operator_audit_append_only before update or delete on internal.operator_audit
  for each row execute function internal.refuse_audit_change();

create or replace function internal.is_operator(user_id uuid) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select from auth.users u
     where u.id = is_operator.user_id
       and u.raw_app_meta_data ->> 'segbase_role' = 'operator'
       and u.deleted_at is null
       and (u.banned_until is null or u.banned_until <= now()))
$$;
comment on function internal.is_operator(uuid) is
  'True when the user is a console operator now: app_metadata.segbase_role = operator, not banned, not deleted.';
revoke execute on function internal.is_operator(uuid) from public, anon, authenticated;
grant execute on function internal.is_operator(uuid) to service_role;

create or replace function internal.record_operator_action(operator_id uuid, action text, target_kind text,
                                                           target_id text, before jsonb, after jsonb, reason text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  audit_id bigint;
begin
  -- The database checks the operator too, so no code path can act (or audit) in an operator's name without
  -- the role; a null operator is the CLI, run by whoever holds the database credentials.
  if operator_id is not null and not internal.is_operator(operator_id) then
    raise exception using errcode = '42501', message = 'not a console operator', hint = 'not_operator';
  end if;
  insert into internal.operator_audit (operator_id, operator_email, actor, action, target_kind, target_id,
                                       before, after, reason)
  values (operator_id, (select u.email from auth.users u where u.id = operator_id),
          case when operator_id is null then 'cli' else 'console' end, action, target_kind, target_id,
          before, after, nullif(btrim(reason), ''))
  returning id into audit_id;
  return audit_id;
end
$$;
comment on function internal.record_operator_action(uuid, text, text, text, jsonb, jsonb, text) is
  'Append one audit row in the caller''s transaction; refuses (42501) an operator_id that is not a current operator.';
revoke execute on function internal.record_operator_action(uuid, text, text, text, jsonb, jsonb, text)
  from public, anon, authenticated;
grant execute on function internal.record_operator_action(uuid, text, text, text, jsonb, jsonb, text) to service_role;
