-- Why: credits are enforced in PostgreSQL on every path (data API, worker, plain SQL, any role): a pending result
-- reserves its price, the status machine allows only legal transitions, `done` charges exactly once (one
-- usage_logs row, unique per result) and `error` releases the reservation, so credits never go negative.

-- The price is recorded on the result when it is submitted (additive column; set by the trigger, never by a client).
alter table public.segmentation_results add column if not exists price integer not null default 0;
do $$
begin
  alter table public.segmentation_results add constraint segmentation_results_price_non_negative check (price >= 0);
exception when duplicate_object then null;
end
$$;
comment on column public.segmentation_results.price is
  'Credits reserved at submit (internal.config credits_per_segmentation) and charged when the result becomes done; set by trigger, immutable.';

-- The reservation sum: a user's in-flight results (pending + processing), with the price in the index.
create index if not exists segmentation_results_in_flight_user_id_idx
  on public.segmentation_results (user_id) include (price) where status in ('pending', 'processing');

-- The unique key on the charge: at most one segmentation usage row per result, whatever path wrote it.
create unique index if not exists usage_logs_one_segmentation_charge_per_result
  on public.usage_logs ((metadata ->> 'result_id')) where action = 'segmentation';

create or replace function internal.reserve_segmentation_credits() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  balance integer;
  reserved bigint;
  segmentation_price bigint := internal.config_int('credits_per_segmentation');
begin
  if segmentation_price is null then
    raise exception 'credits_per_segmentation is missing from internal.config (run segbase migrate)';
  end if;
  new.price := segmentation_price;
  if new.status = 'error' then
    return new;  -- a failed job reserves nothing
  end if;
  -- Serialise submissions (and charges) of one user on their profile row; NO KEY UPDATE is what the charge's
  -- UPDATE takes, and unlike FOR UPDATE it does not block the KEY SHARE locks of foreign-key checks.
  select p.credits into balance from public.users_profile p where p.id = new.user_id for no key update;
  if not found then
    return new;  -- the foreign key reports the missing profile
  end if;
  -- A new statement: under READ COMMITTED it sees every reservation committed before the lock was granted.
  select coalesce(sum(r.price), 0) into reserved
    from public.segmentation_results r
   where r.user_id = new.user_id and r.status in ('pending', 'processing');
  if balance - reserved < new.price then
    raise exception using
      errcode = 'PT402',
      message = format('Insufficient credits: %s available (%s credits, %s reserved by jobs in flight), %s needed',
                       balance - reserved, balance, reserved, new.price),
      detail = format('credits=%s reserved=%s price=%s', balance, reserved, new.price),
      hint = 'insufficient_credits';
  end if;
  return new;
end
$$;
comment on function internal.reserve_segmentation_credits() is
  'BEFORE INSERT on segmentation_results: records the price and refuses (PT402 insufficient_credits) when credits - reserved < price; race-safe via the profile row lock.';
revoke execute on function internal.reserve_segmentation_credits() from public, anon, authenticated;

drop trigger if exists segmentation_results_reserve_credits on public.segmentation_results;
create trigger segmentation_results_reserve_credits before insert on public.segmentation_results
  for each row execute function internal.reserve_segmentation_credits();

create or replace function internal.enforce_segmentation_status_transition() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.price is distinct from old.price then
    raise exception using
      errcode = 'PT409',
      message = 'The price of a segmentation result is fixed when it is submitted',
      hint = 'price_immutable';
  end if;
  if new.status is distinct from old.status
     and not ((old.status = 'pending' and new.status in ('processing', 'done', 'error'))
              or (old.status = 'processing' and new.status in ('done', 'error'))) then
    raise exception using
      errcode = 'PT409',
      message = format('Illegal status transition: %s -> %s', old.status, new.status),
      detail = 'Allowed: pending -> processing|done|error, processing -> done|error; done and error are final.',
      hint = 'illegal_status_transition';
  end if;
  return new;
end
$$;
comment on function internal.enforce_segmentation_status_transition() is
  'BEFORE UPDATE on segmentation_results: the status machine (PT409 illegal_status_transition) and the immutable price.';
revoke execute on function internal.enforce_segmentation_status_transition() from public, anon, authenticated;

drop trigger if exists segmentation_results_status_transition on public.segmentation_results;
create trigger segmentation_results_status_transition before update on public.segmentation_results
  for each row execute function internal.enforce_segmentation_status_transition();

create or replace function internal.charge_completed_segmentation() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  charge_id uuid;
  -- Set (transaction-locally) by internal.apply_webhook_event, so the charge names the event that caused it.
  event_id text := nullif(current_setting('segbase.webhook_event_id', true), '');
begin
  insert into public.usage_logs (user_id, action, credits_used, metadata)
  values (new.user_id, 'segmentation', new.price,
          jsonb_strip_nulls(jsonb_build_object(
            'result_id', new.id::text,
            'event_id', event_id,
            'source', case when event_id is null then 'direct' else 'webhook' end)))
  on conflict ((metadata ->> 'result_id')) where action = 'segmentation' do nothing
  returning id into charge_id;
  if charge_id is null then
    return null;  -- already charged: the unique key keeps it to one
  end if;
  update public.users_profile set credits = credits - new.price
   where id = new.user_id and credits >= new.price;
  if not found then
    -- Only possible when an operator lowered the balance below what was reserved.
    raise exception using
      errcode = 'PT402',
      message = format('Insufficient credits: the balance no longer covers the reserved price %s', new.price),
      hint = 'insufficient_credits';
  end if;
  return null;
end
$$;
comment on function internal.charge_completed_segmentation() is
  'AFTER INSERT/UPDATE on segmentation_results when status becomes done: one usage_logs row (unique per result) and the credit decrement.';
revoke execute on function internal.charge_completed_segmentation() from public, anon, authenticated;

drop trigger if exists segmentation_results_charge_on_insert on public.segmentation_results;
create trigger segmentation_results_charge_on_insert after insert on public.segmentation_results
  for each row when (new.status = 'done') execute function internal.charge_completed_segmentation();
drop trigger if exists segmentation_results_charge_on_done on public.segmentation_results;
create trigger segmentation_results_charge_on_done after update of status on public.segmentation_results
  for each row when (old.status is distinct from new.status and new.status = 'done')
  execute function internal.charge_completed_segmentation();
