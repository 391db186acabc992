-- Why: the API commits the events of concurrent requests in one transaction and sends their ids in one Celery
-- message; the worker claims them in one transaction and applies them together (docs/PIPELINE.md §2.1). Only
-- never-attempted events are claimed, as for a batch's members, so a redelivered message (its worker died) cannot
-- drag an event that failed before through another group: the worker re-queues those one id per message.

create or replace function internal.claim_webhook_events(event_ids uuid[], max_events integer)
returns table (id uuid, claimed boolean, state text)
language plpgsql
set search_path = ''
as $$
declare
  claimed_ids uuid[];
begin
  -- Wait for any delivery that holds one of these rows (a batch or group applying it), in id order as
  -- apply_webhook_events locks them, so overlapping deliveries wait for each other instead of deadlocking. Once
  -- it is done the row is final (nothing to do) or, if that delivery died, received again with its attempt counted.
  perform 1 from internal.webhook_inbox i where i.id = any(event_ids) order by i.id for update;
  -- New statements: their snapshots see what the deliveries waited for committed.
  with fresh as (
    update internal.webhook_inbox i
       set attempts = i.attempts + 1, last_attempt_at = now()
     where i.id = any(event_ids) and i.state = 'received' and i.attempts = 0
    returning i.id
  )
  select coalesce(array_agg(fresh.id), '{}') into claimed_ids from fresh;
  return query
  select e.id, e.id = any(claimed_ids), coalesce(w.state, 'missing')
    from (select distinct u.id from unnest(event_ids) u(id)) e
    left join internal.webhook_inbox w on w.id = e.id;
  if max_events <= cardinality(claimed_ids) then
    return;
  end if;
  -- Take never-attempted events whose own message has not come (yet, or ever: a broker can lose a message a
  -- worker was killed while receiving), oldest first, as a batch's members are taken; SKIP LOCKED leaves rows
  -- another delivery holds. Their own messages later find them final.
  return query
  update internal.webhook_inbox i
     set attempts = i.attempts + 1, last_attempt_at = now()
    from (select s.id from internal.webhook_inbox s
           where s.state = 'received' and s.attempts = 0 and s.id <> all(event_ids)
           order by s.received_at
           limit max_events - cardinality(claimed_ids)
           for update skip locked) more
   where i.id = more.id
  returning i.id, true, i.state;
end
$$;
comment on function internal.claim_webhook_events(uuid[], integer) is
  'Count the first delivery of each never-attempted received event among event_ids, after waiting for any delivery holding them (claimed = true; commit before applying), and of up to max_events in all with other never-attempted received events (oldest first, SKIP LOCKED). Ids not claimed come with their current state: received ones were attempted before and go back one id per message.';
revoke execute on function internal.claim_webhook_events(uuid[], integer) from public, anon, authenticated;
grant execute on function internal.claim_webhook_events(uuid[], integer) to service_role;
