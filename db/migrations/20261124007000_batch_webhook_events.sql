-- Why: a worker delivery pays two transactions (count the attempt, apply) whatever it carries; claiming the other
-- queued events with it and applying them together divides that cost by the batch size (docs/PIPELINE.md §2).
-- The rules stay in internal.apply_webhook_event and the triggers; these functions only choose and lock the rows.

create or replace function internal.begin_webhook_batch(event_id uuid, max_attempts integer, max_events integer)
returns table (id uuid, state text, attempts integer, is_leader boolean)
language plpgsql
set search_path = ''
as $$
declare
  leader_state text;
  leader_attempts integer;
begin
  select b.state, b.attempts into leader_state, leader_attempts
    from internal.begin_webhook_attempt(event_id, max_attempts) b;
  return query select event_id, leader_state, leader_attempts, true;
  -- Only a first delivery takes others along: an event that failed before runs alone, so a poison event never
  -- drags a batch (and its innocent members' attempts) through its failures again.
  if leader_state <> 'received' or leader_attempts <> 1 or max_events <= 1 then
    return;
  end if;
  -- Members: events never attempted yet (attempts = 0), oldest first; SKIP LOCKED leaves rows another delivery
  -- holds. Counting their attempt here (committed with the leader's) means an event joins at most one batch as a
  -- member; later it is applied only by its own message, so batching costs an innocent event at most one attempt.
  return query
  update internal.webhook_inbox i
     set attempts = i.attempts + 1, last_attempt_at = now()
    from (select s.id from internal.webhook_inbox s
           where s.state = 'received' and s.attempts = 0 and s.id <> event_id
           order by s.received_at
           limit max_events - 1
           for update skip locked) fresh
   where i.id = fresh.id
  returning i.id, i.state, i.attempts, false;
end
$$;
comment on function internal.begin_webhook_batch(uuid, integer, integer) is
  'Count one delivery of event_id (as begin_webhook_attempt) and, on its first delivery, claim up to max_events - 1 never-attempted received events (SKIP LOCKED, oldest first), counting their attempt too. Commit before applying.';
revoke execute on function internal.begin_webhook_batch(uuid, integer, integer) from public, anon, authenticated;
grant execute on function internal.begin_webhook_batch(uuid, integer, integer) to service_role;

create or replace function internal.apply_webhook_events(event_ids uuid[])
returns table (id uuid, state text, reason text, changed boolean)
language plpgsql
set search_path = ''
as $$
declare
  event record;
  outcome record;
begin
  -- Lock every inbox row, then every result row, in id order: two batches (or a batch and a single delivery, which
  -- locks its inbox row, then its result) always wait for each other in the same order instead of deadlocking.
  perform 1 from internal.webhook_inbox i where i.id = any(event_ids) order by i.id for update;
  perform 1 from public.segmentation_results r
   where r.id in (select i.result_id from internal.webhook_inbox i where i.id = any(event_ids))
   order by r.id for update;
  -- Apply in arrival order, each through the one-event function (its own savepoint for trigger refusals).
  for event in select i.id, i.state from internal.webhook_inbox i where i.id = any(event_ids)
                order by i.received_at, i.id loop
    select a.state, a.reason into outcome from internal.apply_webhook_event(event.id) a;
    return query select event.id, outcome.state, outcome.reason, event.state = 'received';
  end loop;
end
$$;
comment on function internal.apply_webhook_events(uuid[]) is
  'Apply several inbox events in the caller''s transaction (locks in id order, applies in arrival order through apply_webhook_event); changed = the event was received before this call (false: already final, nothing done).';
revoke execute on function internal.apply_webhook_events(uuid[]) from public, anon, authenticated;
grant execute on function internal.apply_webhook_events(uuid[]) to service_role;
