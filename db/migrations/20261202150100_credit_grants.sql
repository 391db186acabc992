-- Why: operators grant and revoke credits with a reason. Each change is a row of public.credit_grants that its
-- user can read (the history behind their balance), written by one function together with the balance change and
-- the audit row, under the profile row lock the reservation trigger takes, so a revocation never leaves
-- credits - reserved below zero however submissions race it. usage_logs (the original specification's charge
-- record, with its enum and non-negative credits_used) stays as it is.
create table if not exists public.credit_grants (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users_profile (id) on delete cascade,
  amount integer not null constraint credit_grants_amount_not_zero check (amount <> 0),
  reason text not null constraint credit_grants_reason_present check (length(btrim(reason)) between 1 and 500),
  credits_after integer not null constraint credit_grants_credits_after_non_negative check (credits_after >= 0),
  created_at timestamptz not null default now()
);
comment on table public.credit_grants is
  'Credits an operator granted (amount > 0) or revoked (amount < 0), with the reason shown to the user and the balance after.';
create index if not exists credit_grants_user_id_created_at_idx on public.credit_grants (user_id, created_at desc);

alter table public.credit_grants enable row level security;
-- Read-only for users (their own rows, by the policy) and for service_role; written only through
-- internal.grant_credits, so no grant exists without its balance change and audit row.
revoke all on public.credit_grants from public, anon, authenticated, service_role;
grant select on public.credit_grants to anon, authenticated;
grant select on public.credit_grants to service_role;

drop policy if exists "Users can view their own credit grants" on public.credit_grants;
create policy "Users can view their own credit grants" on public.credit_grants
  for select to authenticated using ((select auth.uid()) = user_id);

create or replace function internal.grant_credits(operator_id uuid, user_id uuid, amount integer, reason text)
returns table (grant_id uuid, credits integer, reserved bigint, audit_id bigint)
language plpgsql
security definer
set search_path = ''
set lock_timeout = '10s'
as $$
declare
  balance integer;
  held bigint;
  new_grant uuid;
  audit bigint;
begin
  if amount is null or amount = 0 then
    raise exception using errcode = '22023', message = 'amount must be a non-zero whole number of credits',
                          hint = 'invalid_amount';
  end if;
  if length(btrim(coalesce(reason, ''))) not between 1 and 500 then
    raise exception using errcode = '22023', message = 'a reason (1 to 500 characters) is required',
                          hint = 'reason_required';
  end if;
  -- The lock the reservation trigger takes: a submission waits for this change, or this change for it, so the
  -- reserved sum read below cannot grow before the balance is written.
  select p.credits into balance from public.users_profile p where p.id = grant_credits.user_id for no key update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such user', hint = 'user_not_found';
  end if;
  select coalesce(sum(r.price), 0) into held
    from public.segmentation_results r
   where r.user_id = grant_credits.user_id and r.status in ('pending', 'processing');
  if balance::bigint + amount - held < 0 then
    raise exception using
      errcode = 'PT409',
      message = format('Revoking %s credits would leave %s available (%s credits, %s reserved by jobs in flight); '
                       'at most %s can be revoked now', -amount, balance::bigint + amount - held, balance, held,
                       greatest(balance - held, 0)),
      hint = 'insufficient_credits';
  end if;
  if balance::bigint + amount > 2147483647 then
    raise exception using errcode = '22003', message = 'the balance would exceed 2147483647 credits',
                          hint = 'invalid_amount';
  end if;
  update public.users_profile p set credits = p.credits + amount where p.id = grant_credits.user_id;
  insert into public.credit_grants (user_id, amount, reason, credits_after)
  values (grant_credits.user_id, amount, btrim(reason), balance + amount)
  returning id into new_grant;
  audit := internal.record_operator_action(
    operator_id, case when amount > 0 then 'credits.grant' else 'credits.revoke' end, 'user', user_id::text,
    jsonb_build_object('credits', balance, 'reserved', held),
    jsonb_build_object('credits', balance + amount, 'reserved', held, 'amount', amount, 'grant_id', new_grant),
    reason);
  return query select new_grant, balance + amount, held, audit;
end
$$;
comment on function internal.grant_credits(uuid, uuid, integer, text) is
  'Grant (amount > 0) or revoke (amount < 0) credits with a reason: balance change, credit_grants row and audit row in the caller''s transaction; PT409 insufficient_credits when credits - reserved would go below zero.';
revoke execute on function internal.grant_credits(uuid, uuid, integer, text) from public, anon, authenticated;
grant execute on function internal.grant_credits(uuid, uuid, integer, text) to service_role;
