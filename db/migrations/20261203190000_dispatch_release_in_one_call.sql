-- Why: push dispatch paid several round trips and two releaser transactions per job, and at 100 jobs/s the one
-- releaser thread was the queue every job waited in (docs/DISPATCH.md, "Figures"). The releaser now takes due
-- jobs and learns when to look next in one call, and it tells a delivery that only freed an in-flight slot
-- (NOTIFY payload 'slot', heeded only while the cap held jobs back) from a job that may be due now ('').
-- The functions called once per job are PL/pgSQL: PostgreSQL plans a (non-inlined) SQL-language function's
-- statements at every call, PL/pgSQL caches the plans per session — most of their cost per call.

create or replace function internal.release_due_dispatch_jobs(max_jobs integer, max_in_flight integer,
                                                              hold_seconds integer,
                                                              circuit_failure_threshold integer)
returns table (result_ids uuid[], attempt_ids uuid[], attempts integer[], capped boolean, next_due timestamptz)
language plpgsql
set search_path = ''
as $$
-- internal.release_dispatch_jobs, plus what the releaser needs to wait well, in the same transaction:
-- capped: due jobs may have been held back by the in-flight cap (or the half-open probe), so a freed slot matters;
-- next_due: internal.dispatch_next_due(true) after this release (null: nothing waits or is held).
declare
  endpoint internal.dispatch_endpoint;
  in_flight integer;
  room integer;
  ids uuid[] := '{}';
  holds uuid[] := '{}';
  counts integer[] := '{}';
begin
  select * into endpoint from internal.dispatch_endpoint e where e.id for update;
  if not endpoint.enabled or endpoint.paused_until > clock_timestamp()
     or endpoint.circuit_open_until > clock_timestamp() then
    -- Disabled: enable_dispatch() notifies; paused or open: the next due time is when that ends.
    return query select ids, holds, counts, false,
                        greatest((select min(j.due_at) from internal.dispatch_jobs j where j.due_at is not null),
                                 endpoint.paused_until, endpoint.circuit_open_until);
    return;
  end if;
  select count(*) into in_flight from internal.dispatch_jobs j
   where j.state = 'sending' and j.due_at > clock_timestamp();
  room := least(max_jobs, max_in_flight - in_flight);
  if endpoint.consecutive_failures >= circuit_failure_threshold then
    room := least(room, 1 - in_flight);  -- half-open: one probe at a time until one succeeds
  end if;
  if room > 0 then
    with released as (
      update internal.dispatch_jobs j
         set state = 'sending', attempt_id = gen_random_uuid(), attempts = j.attempts + 1, worker_id = null,
             due_at = clock_timestamp() + make_interval(secs => hold_seconds)
        from (select s.result_id from internal.dispatch_jobs s
               where s.due_at <= clock_timestamp()
               order by s.due_at
               limit room
               for update skip locked) due
       where j.result_id = due.result_id
      returning j.result_id, j.attempt_id, j.attempts)
    select coalesce(array_agg(r.result_id), '{}'), coalesce(array_agg(r.attempt_id), '{}'),
           coalesce(array_agg(r.attempts), '{}')
      into ids, holds, counts from released r;
  end if;
  -- A release that used all its room may have left due jobs behind. The next due time is
  -- internal.dispatch_next_due(true), written out (a SQL-language function is planned at every call).
  return query select ids, holds, counts, cardinality(ids) >= greatest(room, 0),
                      greatest((select min(j.due_at) from internal.dispatch_jobs j where j.due_at is not null),
                               endpoint.paused_until, endpoint.circuit_open_until);
end
$$;
comment on function internal.release_due_dispatch_jobs(integer, integer, integer, integer) is
  'Push releaser: internal.release_dispatch_jobs in one row (arrays), with capped (the in-flight cap or the half-open probe may have held due jobs back: a freed slot matters) and next_due (when to look again).';
revoke execute on function internal.release_due_dispatch_jobs(integer, integer, integer, integer) from public, anon, authenticated;
grant execute on function internal.release_due_dispatch_jobs(integer, integer, integer, integer) to service_role;

create or replace function internal.begin_dispatch_attempt(job_id uuid, attempt uuid)
returns table (result_id uuid, user_id uuid, project_id uuid, text_prompt text, source_image_url text,
               created_at timestamptz, enqueued_at timestamptz, attempts integer, hold_until timestamptz)
language plpgsql
set search_path = ''
as $$
begin
  -- As before (20261202120000), in PL/pgSQL for its cached plan. Committed before the request is sent: an attempt
  -- exists from here on. A cancel (which locks this row) either committed before, and this finds the job
  -- finished, or waits for this and then the attempt is in flight.
  return query
  update internal.dispatch_jobs j
     set last_attempt_at = clock_timestamp()
    from public.segmentation_results r
   where j.result_id = begin_dispatch_attempt.job_id and j.attempt_id = begin_dispatch_attempt.attempt
     and j.state = 'sending' and j.due_at > clock_timestamp() and r.id = j.result_id
  returning r.id, r.user_id, r.project_id, r.text_prompt, r.source_image_url, r.created_at, j.enqueued_at,
            j.attempts, j.due_at;
end
$$;
revoke execute on function internal.begin_dispatch_attempt(uuid, uuid) from public, anon, authenticated;
grant execute on function internal.begin_dispatch_attempt(uuid, uuid) to service_role;

create or replace function internal.record_dispatch_attempt(
  job_id uuid, attempt uuid, result text, detail text, retry_in_seconds double precision,
  failure_threshold integer, open_seconds integer, max_open_seconds integer)
returns text
language plpgsql
set search_path = ''
as $$
-- result: delivered (2xx) | failed (error, timeout, other status) | throttled (429/503 with Retry-After:
-- retry_in_seconds is the wait) | gone (410). retry_in_seconds null on `failed` means retries are exhausted.
declare
  job internal.dispatch_jobs;
  next_state text;
begin
  -- Results before jobs: the order of every writer (a retries-exhausted job fails its result).
  perform 1 from public.segmentation_results r where r.id = job_id for update;
  select * into job from internal.dispatch_jobs j where j.result_id = job_id for update;

  -- The endpoint's health is a fact whatever became of this job meanwhile. Each update is conditional, so a
  -- healthy endpoint's row is not locked by every delivery.
  if result = 'delivered' then
    update internal.dispatch_endpoint e
       set consecutive_failures = 0, circuit_open_until = null, circuit_open_seconds = 0, updated_at = now()
     where e.id and (e.consecutive_failures <> 0 or e.circuit_open_until is not null);
  elsif result = 'failed' then
    -- The circuit opens when the failures reach the threshold, and again (for twice as long, up to the maximum)
    -- when a half-open probe fails; failures of attempts already in flight while it is open do not extend it.
    update internal.dispatch_endpoint e
       set consecutive_failures = e.consecutive_failures + 1,
           circuit_open_seconds = opened.seconds,
           circuit_open_until = clock_timestamp() + make_interval(secs => opened.seconds),
           updated_at = now()
      from (select case when e2.circuit_open_seconds = 0 then open_seconds
                        else least(max_open_seconds, e2.circuit_open_seconds * 2) end as seconds
              from internal.dispatch_endpoint e2 where e2.id) opened
     where e.id and e.consecutive_failures + 1 >= failure_threshold
       and (e.circuit_open_until is null or e.circuit_open_until <= clock_timestamp());
    if not found then
      update internal.dispatch_endpoint e set consecutive_failures = e.consecutive_failures + 1, updated_at = now()
       where e.id;
    end if;
  elsif result = 'throttled' then
    update internal.dispatch_endpoint e
       set paused_until = greatest(e.paused_until, clock_timestamp() + make_interval(secs => retry_in_seconds)),
           updated_at = now()
     where e.id;
  elsif result = 'gone' then
    update internal.dispatch_endpoint e
       set enabled = false, disabled_at = now(), disabled_reason = coalesce(detail, '410 Gone'), updated_at = now()
     where e.id and e.enabled;
  else
    raise exception 'unknown attempt result %', result;
  end if;

  if job.result_id is null or job.attempt_id is distinct from attempt or job.state <> 'sending' then
    return 'stale';  -- superseded (its hold expired and the job was taken again), finished or cancelled meanwhile
  end if;

  if result = 'delivered' then
    update internal.dispatch_jobs j
       set state = 'delivered', due_at = null, first_dispatched_at = coalesce(j.first_dispatched_at, clock_timestamp()),
           last_error = null
     where j.result_id = job_id;
    next_state := 'delivered';
  elsif result = 'gone' then
    -- Back to the queue, due at once: it resumes when an operator re-enables dispatch.
    update internal.dispatch_jobs j set state = 'queued', due_at = clock_timestamp(), last_error = detail
     where j.result_id = job_id;
    next_state := 'queued';
  elsif retry_in_seconds is null then
    perform internal.fail_dispatch_job(job_id, 'dispatch_failed', detail);
    next_state := 'finished';
  else
    update internal.dispatch_jobs j
       set state = 'queued', due_at = clock_timestamp() + make_interval(secs => retry_in_seconds), last_error = detail,
           -- Backpressure (Retry-After) is not a failure: it does not use up the attempt budget; the queue
           -- timeout still bounds a backend that never stops asking for time.
           attempts = case when result = 'throttled' then greatest(j.attempts - 1, 0) else j.attempts end
     where j.result_id = job_id;
    next_state := 'queued';
  end if;
  -- A slot in the in-flight cap is free again: wake the releaser. A delivery says only that ('slot'), which the
  -- releaser heeds only while the cap held jobs back; a job queued again (retry, 410) may be due now ('').
  perform pg_notify('segbase_dispatch', case when next_state = 'delivered' then 'slot' else '' end);
  return next_state;
end
$$;
comment on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) is
  'Push: record how an attempt ended (delivered|failed|throttled|gone): the endpoint''s circuit breaker, pause or disable, and the job''s next state (delivered, queued with its backoff, or finished dispatch_failed). Returns the state, or stale.';
revoke execute on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) from public, anon, authenticated;
grant execute on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) to service_role;

