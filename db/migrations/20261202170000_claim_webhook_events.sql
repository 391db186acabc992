-- Why: the API commits the events of concurrent requests in one transaction and sends their ids in one Celery
-- message; the worker claims them in one transaction and applies them together (docs/PIPELINE.md §2.1). Only
-- never-attempted events are claimed, as for a batch's members, so a redelivered message (its worker died) cannot
-- drag an event that failed before through another batch: the worker re-queues those one id per message.

create or replace function internal.claim_webhook_events(event_ids uuid[])
returns table (id uuid, claimed boolean, state text)
language sql
set search_path = ''
as $$
  -- Lock in id order, as apply_webhook_events does, so claims and applies of overlapping sets wait for each other
  -- instead of deadlocking; a row another delivery holds is re-checked once it is released.
  with fresh as (
    update internal.webhook_inbox i
       set attempts = i.attempts + 1, last_attempt_at = now()
      from (select s.id from internal.webhook_inbox s
             where s.id = any(event_ids) and s.state = 'received' and s.attempts = 0
             order by s.id
             for update) picked
     where i.id = picked.id and i.state = 'received' and i.attempts = 0
    returning i.id
  )
  select e.id, f.id is not null, coalesce(w.state, 'missing')
    from (select distinct u.id from unnest(event_ids) u(id)) e
    left join fresh f on f.id = e.id
    left join internal.webhook_inbox w on w.id = e.id
$$;
comment on function internal.claim_webhook_events(uuid[]) is
  'Count the first delivery of each never-attempted received event among event_ids (claimed = true; commit before applying). The others are reported with their state as of the statement''s start: received ones were attempted before (or are being applied) and go back one id per message.';
revoke execute on function internal.claim_webhook_events(uuid[]) from public, anon, authenticated;
grant execute on function internal.claim_webhook_events(uuid[]) to service_role;
