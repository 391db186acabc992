-- Why: the worker applies an inbox event through one SQL function, in one transaction, as service_role: it goes
-- through the same triggers as any other writer (status machine, charge), and records the event's final state.
-- Attempts are counted by a separate function committed first, so a delivery that crashes still counts.

create or replace function internal.begin_webhook_attempt(event_id uuid, max_attempts integer)
returns table (state text, attempts integer)
language plpgsql
set search_path = ''
as $$
declare
  counted integer;
begin
  update internal.webhook_inbox i
     set attempts = i.attempts + 1, last_attempt_at = now()
   where i.id = event_id and i.state = 'received'
  returning i.attempts into counted;
  if not found then
    -- Missing, or already final: report what is there (a redelivery of a finished event is a no-op).
    return query select coalesce((select i.state from internal.webhook_inbox i where i.id = event_id), 'missing'),
                        coalesce((select i.attempts from internal.webhook_inbox i where i.id = event_id), 0);
    return;
  end if;
  if counted > max_attempts then
    update internal.webhook_inbox i
       set state = 'rejected', finished_at = now(),
           reason = format('poison: gave up after %s attempts (INBOX_MAX_ATTEMPTS=%s)', counted - 1, max_attempts)
     where i.id = event_id;
    return query select 'rejected'::text, counted;
    return;
  end if;
  return query select 'received'::text, counted;
end
$$;
comment on function internal.begin_webhook_attempt(uuid, integer) is
  'Count one delivery of an inbox event (commit before applying); rejects it as poison past max_attempts. Returns the state to act on.';
revoke execute on function internal.begin_webhook_attempt(uuid, integer) from public, anon, authenticated;
grant execute on function internal.begin_webhook_attempt(uuid, integer) to service_role;

create or replace function internal.apply_webhook_event(event_id uuid)
returns table (state text, reason text)
language plpgsql
set search_path = ''
as $$
declare
  event internal.webhook_inbox;
  current_status public.segmentation_status;
  outcome text;
  why text;
begin
  select * into event from internal.webhook_inbox i where i.id = event_id for update;
  if not found then
    return query select 'missing'::text, 'no such inbox event'::text;
    return;
  end if;
  if event.state <> 'received' then
    return query select event.state, event.reason;  -- already final: applying again changes nothing
    return;
  end if;

  select r.status into current_status from public.segmentation_results r where r.id = event.result_id for update;
  if not found then
    outcome := 'rejected';
    why := 'unknown result: no segmentation_results row has id = task_id';
  elsif current_status::text = event.event_status then
    outcome := 'duplicate';
    why := format('result is already %s', current_status);
  elsif event.event_status = 'processing' and current_status in ('done', 'error') then
    outcome := 'ignored';
    why := format('stale: processing arrived after the result became %s', current_status);
  elsif current_status in ('done', 'error') then
    outcome := 'rejected';
    why := format('illegal transition: %s -> %s (%s is final)', current_status, event.event_status, current_status);
  else
    perform set_config('segbase.webhook_event_id', event.id::text, true);
    begin
      update public.segmentation_results r
         set status = event.event_status::public.segmentation_status,
             mask_image_url = coalesce(event.payload ->> 'mask_url', r.mask_image_url),
             labels = coalesce(event.payload -> 'labels', r.labels),
             metadata = r.metadata
                        || coalesce(event.payload -> 'metadata', '{}'::jsonb)
                        || case when event.payload ? 'error'
                                then jsonb_build_object('error', event.payload -> 'error')
                                else '{}'::jsonb end
       where r.id = event.result_id;
      outcome := 'applied';
    exception when sqlstate 'PT402' or sqlstate 'PT409' then
      -- A rule of the triggers refused it (e.g. an operator lowered the balance below the reservation).
      outcome := 'rejected';
      why := sqlerrm;
    end;
    perform set_config('segbase.webhook_event_id', '', true);
  end if;

  update internal.webhook_inbox i set state = outcome, reason = why, finished_at = now() where i.id = event.id;
  return query select outcome, why;
end
$$;
comment on function internal.apply_webhook_event(uuid) is
  'Apply one inbox event in the caller''s transaction: lock the result, run the status machine (triggers charge on done), record applied|duplicate|ignored|rejected with the reason.';
revoke execute on function internal.apply_webhook_event(uuid) from public, anon, authenticated;
grant execute on function internal.apply_webhook_event(uuid) to service_role;

create or replace function internal.claim_stale_webhook_events(min_age_seconds integer, max_events integer)
returns setof uuid
language sql
set search_path = ''
as $$
  update internal.webhook_inbox i
     set enqueued_at = now()
    from (select s.id from internal.webhook_inbox s
           where s.state = 'received'
             and coalesce(s.enqueued_at, s.received_at) < now() - make_interval(secs => min_age_seconds)
           order by s.received_at
           limit max_events
           for update skip locked) stale
   where i.id = stale.id
  returning i.id
$$;
comment on function internal.claim_stale_webhook_events(integer, integer) is
  'Sweeper: mark up to max_events received events older than min_age_seconds (since receipt or last re-queue) as re-queued now and return their ids; SKIP LOCKED keeps two sweepers apart.';
revoke execute on function internal.claim_stale_webhook_events(integer, integer) from public, anon, authenticated;
grant execute on function internal.claim_stale_webhook_events(integer, integer) to service_role;
