-- Why: the inference backend learns of every job from a durable queue in PostgreSQL. Inserting a pending result
-- enqueues its job in the same transaction (whatever path inserted it), and a result that reaches done/error
-- finishes its job; nothing about a job exists only in Redis. Push (a Celery task POSTs the job) and pull (backend
-- workers lease jobs) take jobs from this one table through the functions below, so every process obeys the same
-- rules: a job is held by at most one attempt or lease at a time, a cancelled job is never offered again, the
-- in-flight cap and the circuit breaker are decided under one lock (docs/DISPATCH.md).

create table if not exists internal.dispatch_jobs (
  result_id uuid primary key references public.segmentation_results (id) on delete cascade,
  user_id uuid not null,
  state text not null default 'queued'
    constraint dispatch_jobs_state check (state in ('queued', 'sending', 'delivered', 'leased', 'finished')),
  outcome text
    constraint dispatch_jobs_outcome check (outcome in ('done', 'error', 'cancelled', 'dispatch_failed',
                                                        'dispatch_timeout', 'source_image_not_readable')),
  due_at timestamptz,
  attempt_id uuid,
  attempts integer not null default 0 constraint dispatch_jobs_attempts_non_negative check (attempts >= 0),
  worker_id text,
  enqueued_at timestamptz not null default clock_timestamp(),
  first_dispatched_at timestamptz,
  last_attempt_at timestamptz,
  last_error text,
  lease_expiries integer not null default 0,
  finished_at timestamptz,
  constraint dispatch_jobs_finished_has_outcome
    check ((state = 'finished') = (finished_at is not null) and (state = 'finished') = (outcome is not null)),
  constraint dispatch_jobs_held_or_waiting_has_due_at
    check ((state in ('queued', 'sending', 'leased')) = (due_at is not null))
);
comment on table internal.dispatch_jobs is
  'One row per job (= segmentation result) for the inference backend: queued → sending (push attempt) → delivered, or queued → leased (pull); finished when the result is done/error, cancelled, or dispatch gave up.';
comment on column internal.dispatch_jobs.state is
  'queued: waiting (due_at = when it may be taken); sending: a push attempt holds it until due_at; delivered: the backend acknowledged a push; leased: a pull worker holds it until due_at; finished: see outcome.';
comment on column internal.dispatch_jobs.due_at is
  'queued: when the job may next be taken (retry backoff, Retry-After); sending/leased: when the hold expires and the job may be taken again. Null once delivered or finished.';
comment on column internal.dispatch_jobs.attempt_id is
  'The current hold: a push attempt''s token (in its Celery message) or a pull lease id; a report naming an older one is stale.';
comment on column internal.dispatch_jobs.attempts is 'Push attempts released plus pull leases granted.';
comment on column internal.dispatch_jobs.first_dispatched_at is
  'First acknowledged push delivery or first lease: RESULT_TIMEOUT_SECONDS counts from here; before it, DISPATCH_QUEUE_TIMEOUT_SECONDS bounds the job.';
comment on column internal.dispatch_jobs.lease_expiries is 'Leases of this job that expired and were taken over.';
comment on column internal.dispatch_jobs.outcome is
  'How a finished job ended: done/error (its result), cancelled (operator), dispatch_failed (retries exhausted), dispatch_timeout (queued too long), source_image_not_readable (the owner may not read the image).';

-- Taking due jobs (push release, pull claim): every waiting or held job has a due_at, nothing else does.
create index if not exists dispatch_jobs_due_at_idx on internal.dispatch_jobs (due_at) where due_at is not null;
-- The in-flight count of push attempts (the cap and the circuit breaker's probe).
create index if not exists dispatch_jobs_sending_idx on internal.dispatch_jobs (due_at) where state = 'sending';
-- Extending/releasing leases by lease id.
create index if not exists dispatch_jobs_lease_idx on internal.dispatch_jobs (attempt_id) where state = 'leased';
-- Queue depth, the oldest waiting job, and the queue timeout.
create index if not exists dispatch_jobs_waiting_idx on internal.dispatch_jobs (enqueued_at)
  where state in ('queued', 'sending');
-- Counting jobs that dispatch gave up on (status, console).
create index if not exists dispatch_jobs_failed_idx on internal.dispatch_jobs (finished_at)
  where outcome in ('dispatch_failed', 'dispatch_timeout', 'source_image_not_readable');

alter table internal.dispatch_jobs enable row level security;
revoke all on internal.dispatch_jobs from public, anon, authenticated;
grant select, update on internal.dispatch_jobs to service_role;

-- The backend endpoint's health, shared by the process that releases jobs and the workers that deliver them.
create table if not exists internal.dispatch_endpoint (
  id boolean primary key default true constraint dispatch_endpoint_one_row check (id),
  enabled boolean not null default true,
  disabled_at timestamptz,
  disabled_reason text,
  consecutive_failures integer not null default 0,
  circuit_open_until timestamptz,
  circuit_open_seconds integer not null default 0,
  paused_until timestamptz,
  updated_at timestamptz not null default now()
);
comment on table internal.dispatch_endpoint is
  'The push endpoint (DISPATCH_URL): disabled by a 410 until `segbase dispatch enable`; a circuit breaker opened by consecutive failures (probed one job at a time once it half-opens); paused by Retry-After.';
insert into internal.dispatch_endpoint (id) values (true) on conflict (id) do nothing;
alter table internal.dispatch_endpoint enable row level security;
revoke all on internal.dispatch_endpoint from public, anon, authenticated;
grant select, update on internal.dispatch_endpoint to service_role;

-- A finished job stays finished, whatever writes it (a late report, an operator's SQL).
create or replace function internal.keep_finished_dispatch_jobs_final() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.state = 'finished' then
    raise exception using
      errcode = 'PT409',
      message = format('dispatch job %s is finished (%s); it cannot change', old.result_id, old.outcome),
      hint = 'dispatch_job_finished';
  end if;
  return new;
end
$$;
comment on function internal.keep_finished_dispatch_jobs_final() is
  'BEFORE UPDATE on internal.dispatch_jobs: a finished job is final (PT409 dispatch_job_finished).';
revoke execute on function internal.keep_finished_dispatch_jobs_final() from public, anon, authenticated;
drop trigger if exists dispatch_jobs_finished_is_final on internal.dispatch_jobs;
create trigger dispatch_jobs_finished_is_final before update on internal.dispatch_jobs
  for each row execute function internal.keep_finished_dispatch_jobs_final();

-- --- enqueue and finish, from the results table ---------------------------------------------------------------
create or replace function internal.enqueue_dispatch_job() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into internal.dispatch_jobs (result_id, user_id, due_at)
  values (new.id, new.user_id, clock_timestamp())
  on conflict (result_id) do nothing;
  -- Wakes the push releaser and long-polling claimers; delivered only on commit, folded per transaction.
  perform pg_notify('segbase_dispatch', '');
  return null;
end
$$;
comment on function internal.enqueue_dispatch_job() is
  'AFTER INSERT on segmentation_results (pending): enqueue the job in the inserting transaction and NOTIFY segbase_dispatch.';
revoke execute on function internal.enqueue_dispatch_job() from public, anon, authenticated;
drop trigger if exists segmentation_results_enqueue_dispatch on public.segmentation_results;
create trigger segmentation_results_enqueue_dispatch after insert on public.segmentation_results
  for each row when (new.status = 'pending') execute function internal.enqueue_dispatch_job();

create or replace function internal.finish_dispatch_job() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update internal.dispatch_jobs j
     set state = 'finished', outcome = new.status::text, due_at = null, finished_at = clock_timestamp()
   where j.result_id = new.id and j.state <> 'finished';
  return null;
end
$$;
comment on function internal.finish_dispatch_job() is
  'AFTER UPDATE of status on segmentation_results (to done/error, by webhook, reconciliation or any writer): finish the job.';
revoke execute on function internal.finish_dispatch_job() from public, anon, authenticated;
drop trigger if exists segmentation_results_finish_dispatch on public.segmentation_results;
create trigger segmentation_results_finish_dispatch after update of status on public.segmentation_results
  for each row when (old.status is distinct from new.status and new.status in ('done', 'error'))
  execute function internal.finish_dispatch_job();

-- Ends a job and its result as `error` with `reason` (the result's metadata.error); releases the reservation
-- through the ordinary status machine. The caller holds the result's row lock (results before jobs, always).
create or replace function internal.fail_dispatch_job(job_id uuid, reason text, detail text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update internal.dispatch_jobs j
     set state = 'finished', outcome = reason, due_at = null, finished_at = clock_timestamp(),
         last_error = coalesce(detail, j.last_error)
   where j.result_id = job_id and j.state <> 'finished';
  update public.segmentation_results r
     set status = 'error',
         metadata = r.metadata || jsonb_strip_nulls(jsonb_build_object('error', reason, 'error_detail', detail,
                                                                      'error_at', now()))
   where r.id = job_id and r.status in ('pending', 'processing');
end
$$;
comment on function internal.fail_dispatch_job(uuid, text, text) is
  'Finish a job with outcome `reason` and move its result to error (metadata.error = reason); the caller locked the result first.';
revoke execute on function internal.fail_dispatch_job(uuid, text, text) from public, anon, authenticated;
grant execute on function internal.fail_dispatch_job(uuid, text, text) to service_role;

-- --- push ------------------------------------------------------------------------------------------------------
create or replace function internal.release_dispatch_jobs(max_jobs integer, max_in_flight integer,
                                                          hold_seconds integer, circuit_failure_threshold integer)
returns table (result_id uuid, attempt_id uuid, attempts integer)
language plpgsql
set search_path = ''
as $$
declare
  endpoint internal.dispatch_endpoint;
  in_flight integer;
  room integer;
begin
  -- The endpoint row's lock makes releasers take turns: the in-flight count and the half-open probe are decided
  -- on one view, however many processes release.
  select * into endpoint from internal.dispatch_endpoint e where e.id for update;
  if not endpoint.enabled or endpoint.paused_until > clock_timestamp()
     or endpoint.circuit_open_until > clock_timestamp() then
    return;
  end if;
  select count(*) into in_flight from internal.dispatch_jobs j
   where j.state = 'sending' and j.due_at > clock_timestamp();
  room := least(max_jobs, max_in_flight - in_flight);
  if endpoint.consecutive_failures >= circuit_failure_threshold then
    room := least(room, 1 - in_flight);  -- half-open: one probe at a time until one succeeds
  end if;
  if room <= 0 then
    return;
  end if;
  return query
  update internal.dispatch_jobs j
     set state = 'sending', attempt_id = gen_random_uuid(), attempts = j.attempts + 1, worker_id = null,
         due_at = clock_timestamp() + make_interval(secs => hold_seconds)
    from (select s.result_id from internal.dispatch_jobs s
           where s.due_at <= clock_timestamp()
           order by s.due_at
           limit room
           for update skip locked) due
   where j.result_id = due.result_id
  returning j.result_id, j.attempt_id, j.attempts;
end
$$;
comment on function internal.release_dispatch_jobs(integer, integer, integer, integer) is
  'Push: hand up to max_jobs due jobs to delivery attempts (state sending, a fresh attempt_id, held hold_seconds), within the in-flight cap, not while dispatch is disabled, paused or the circuit is open; one probe when half-open.';
revoke execute on function internal.release_dispatch_jobs(integer, integer, integer, integer) from public, anon, authenticated;
grant execute on function internal.release_dispatch_jobs(integer, integer, integer, integer) to service_role;

create or replace function internal.begin_dispatch_attempt(job_id uuid, attempt uuid)
returns table (result_id uuid, user_id uuid, project_id uuid, text_prompt text, source_image_url text,
               created_at timestamptz, enqueued_at timestamptz, attempts integer, hold_until timestamptz)
language sql
set search_path = ''
as $$
  -- Committed before the request is sent: an attempt exists from here on. A cancel (which locks this row) either
  -- committed before, and this finds the job finished, or waits for this and then the attempt is in flight.
  update internal.dispatch_jobs j
     set last_attempt_at = clock_timestamp()
    from public.segmentation_results r
   where j.result_id = job_id and j.attempt_id = attempt and j.state = 'sending'
     and j.due_at > clock_timestamp() and r.id = j.result_id
  returning r.id, r.user_id, r.project_id, r.text_prompt, r.source_image_url, r.created_at, j.enqueued_at,
            j.attempts, j.due_at
$$;
comment on function internal.begin_dispatch_attempt(uuid, uuid) is
  'Push: start the attempt `attempt` of a job (commit before sending); no row when the attempt is stale, expired, or the job finished or was cancelled.';
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
  -- A slot in the in-flight cap is free again: wake the releaser.
  perform pg_notify('segbase_dispatch', '');
  return next_state;
end
$$;
comment on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) is
  'Push: record how an attempt ended (delivered|failed|throttled|gone): the endpoint''s circuit breaker, pause or disable, and the job''s next state (delivered, queued with its backoff, or finished dispatch_failed). Returns the state, or stale.';
revoke execute on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) from public, anon, authenticated;
grant execute on function internal.record_dispatch_attempt(uuid, uuid, text, text, double precision, integer, integer, integer) to service_role;

-- --- pull ------------------------------------------------------------------------------------------------------
create or replace function internal.claim_dispatch_jobs(max_jobs integer, lease_seconds integer, worker text)
returns table (result_id uuid, lease_id uuid, lease_expires_at timestamptz, attempts integer,
               lease_was_expired boolean, user_id uuid, project_id uuid, text_prompt text, source_image_url text,
               created_at timestamptz, enqueued_at timestamptz)
language sql
set search_path = ''
as $$
  -- SKIP LOCKED: concurrent claimers take different jobs and never wait on each other; a held job is taken again
  -- only once its hold (lease or push attempt) has expired.
  with due as (
    select j.result_id, j.state as was from internal.dispatch_jobs j
     where j.due_at <= clock_timestamp()
     order by j.due_at
     limit max_jobs
     for update skip locked
  ), leased as (
    update internal.dispatch_jobs j
       set state = 'leased', attempt_id = gen_random_uuid(), attempts = j.attempts + 1, worker_id = worker,
           due_at = clock_timestamp() + make_interval(secs => lease_seconds), last_attempt_at = clock_timestamp(),
           first_dispatched_at = coalesce(j.first_dispatched_at, clock_timestamp()),
           lease_expiries = j.lease_expiries + (due.was = 'leased')::integer
      from due
     where j.result_id = due.result_id
    returning j.result_id, j.attempt_id, j.due_at, j.attempts, due.was = 'leased' as expired, j.enqueued_at
  )
  select l.result_id, l.attempt_id, l.due_at, l.attempts, l.expired, r.user_id, r.project_id, r.text_prompt,
         r.source_image_url, r.created_at, l.enqueued_at
    from leased l join public.segmentation_results r on r.id = l.result_id
   order by l.enqueued_at
$$;
comment on function internal.claim_dispatch_jobs(integer, integer, text) is
  'Pull: lease up to max_jobs due jobs (queued, or held past their hold) to `worker` for lease_seconds; a job is never leased to two workers at once.';
revoke execute on function internal.claim_dispatch_jobs(integer, integer, text) from public, anon, authenticated;
grant execute on function internal.claim_dispatch_jobs(integer, integer, text) to service_role;

create or replace function internal.extend_dispatch_leases(lease_ids uuid[], lease_seconds integer)
returns table (result_id uuid, lease_id uuid, lease_expires_at timestamptz, attempts integer, user_id uuid,
               project_id uuid, text_prompt text, source_image_url text, created_at timestamptz,
               enqueued_at timestamptz)
language sql
set search_path = ''
as $$
  -- Only a live lease is extended: once it expired the job was back in the queue, and its worker has lost it.
  update internal.dispatch_jobs j
     set due_at = clock_timestamp() + make_interval(secs => lease_seconds)
    from public.segmentation_results r
   where j.attempt_id = any(lease_ids) and j.state = 'leased' and j.due_at > clock_timestamp() and r.id = j.result_id
  returning j.result_id, j.attempt_id, j.due_at, j.attempts, r.user_id, r.project_id, r.text_prompt,
            r.source_image_url, r.created_at, j.enqueued_at
$$;
comment on function internal.extend_dispatch_leases(uuid[], integer) is
  'Pull: extend live leases by lease_seconds from now; leases that expired, were released or whose job finished are not returned.';
revoke execute on function internal.extend_dispatch_leases(uuid[], integer) from public, anon, authenticated;
grant execute on function internal.extend_dispatch_leases(uuid[], integer) to service_role;

create or replace function internal.release_dispatch_leases(lease_ids uuid[], delay_seconds integer)
returns table (result_id uuid, lease_id uuid)
language plpgsql
set search_path = ''
as $$
begin
  return query
  update internal.dispatch_jobs j
     set state = 'queued', attempt_id = null, worker_id = null,
         due_at = clock_timestamp() + make_interval(secs => delay_seconds)
    from (select h.result_id, h.attempt_id from internal.dispatch_jobs h
           where h.attempt_id = any(lease_ids) and h.state = 'leased'
           for update) held
   where j.result_id = held.result_id
  returning j.result_id, held.attempt_id;
  if found then
    perform pg_notify('segbase_dispatch', '');
  end if;
end
$$;
comment on function internal.release_dispatch_leases(uuid[], integer) is
  'Pull: give leased jobs back to the queue (due after delay_seconds); returns the jobs released and their former lease ids.';
revoke execute on function internal.release_dispatch_leases(uuid[], integer) from public, anon, authenticated;
grant execute on function internal.release_dispatch_leases(uuid[], integer) to service_role;

-- --- operator actions (service_role: segbase dispatch, the console) --------------------------------------------
create or replace function internal.cancel_dispatch_job(job_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
  current_status public.segmentation_status;
begin
  -- Results before jobs. Once this commits no attempt can begin (begin_dispatch_attempt finds the job finished)
  -- and no claim can take it; an attempt that began earlier may still reach the backend, whose later `done` is
  -- then refused by the status machine (error is final) and never charged.
  select r.status into current_status from public.segmentation_results r where r.id = job_id for update;
  if not found then
    return 'missing';
  end if;
  if current_status in ('done', 'error') then
    return 'already_finished';
  end if;
  perform internal.fail_dispatch_job(job_id, 'cancelled', null);
  return 'cancelled';
end
$$;
comment on function internal.cancel_dispatch_job(uuid) is
  'Operator: cancel a pending/processing job: its result becomes error (metadata.error = cancelled), its reservation is released, no attempt or lease starts after this commits. Returns cancelled | already_finished | missing.';
revoke execute on function internal.cancel_dispatch_job(uuid) from public, anon, authenticated;
grant execute on function internal.cancel_dispatch_job(uuid) to service_role;

create or replace function internal.retry_dispatch_job(job_id uuid)
returns table (action text, new_job_id uuid)
language plpgsql
set search_path = ''
as $$
declare
  job internal.dispatch_jobs;
  failed public.segmentation_results;
  resubmitted uuid;
begin
  select * into failed from public.segmentation_results r where r.id = job_id for update;
  select * into job from internal.dispatch_jobs j where j.result_id = job_id for update;
  if job.result_id is null then
    return query select 'missing'::text, null::uuid;
    return;
  end if;
  if job.state = 'queued' then
    -- Waiting for its next attempt (backoff, Retry-After): due now, and a fresh retry budget.
    update internal.dispatch_jobs j set due_at = clock_timestamp(), attempts = 0 where j.result_id = job_id;
    perform pg_notify('segbase_dispatch', '');
    return query select 'due_now'::text, job_id;
    return;
  end if;
  if job.state = 'finished' and job.outcome in ('dispatch_failed', 'dispatch_timeout') then
    -- Its result is final (error), and result ids are single-use: submit the same input again as a new result of
    -- the same owner, which reserves credits like any submission.
    insert into public.segmentation_results (user_id, project_id, source_image_url, text_prompt, metadata)
    values (failed.user_id, failed.project_id, failed.source_image_url, failed.text_prompt,
            jsonb_build_object('retry_of', failed.id))
    returning id into resubmitted;
    return query select 'resubmitted'::text, resubmitted;
    return;
  end if;
  return query select 'not_retryable'::text, null::uuid;
end
$$;
comment on function internal.retry_dispatch_job(uuid) is
  'Operator: retry a dispatch. A job waiting for a retry becomes due now (fresh retry budget); a job that failed or timed out in the queue is resubmitted as a new result of the same owner (metadata.retry_of). Returns (due_now|resubmitted|not_retryable|missing, job id).';
revoke execute on function internal.retry_dispatch_job(uuid) from public, anon, authenticated;
grant execute on function internal.retry_dispatch_job(uuid) to service_role;

create or replace function internal.enable_dispatch()
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  was_disabled boolean;
begin
  select not e.enabled into was_disabled from internal.dispatch_endpoint e where e.id for update;
  update internal.dispatch_endpoint e
     set enabled = true, disabled_at = null, disabled_reason = null, consecutive_failures = 0,
         circuit_open_until = null, circuit_open_seconds = 0, paused_until = null, updated_at = now()
   where e.id;
  perform pg_notify('segbase_dispatch', '');
  return was_disabled;
end
$$;
comment on function internal.enable_dispatch() is
  'Operator: re-enable push dispatch after a 410 (and close the circuit breaker); queued jobs resume. Returns whether it was disabled.';
revoke execute on function internal.enable_dispatch() from public, anon, authenticated;
grant execute on function internal.enable_dispatch() to service_role;

-- --- time limits and health ------------------------------------------------------------------------------------
create or replace function internal.time_out_queued_dispatch_jobs(timeout_seconds integer, max_jobs integer)
returns setof uuid
language plpgsql
set search_path = ''
as $$
declare
  stale uuid;
begin
  for stale in
    select r.id from internal.dispatch_jobs j join public.segmentation_results r on r.id = j.result_id
     where j.state in ('queued', 'sending') and j.first_dispatched_at is null
       and j.enqueued_at < clock_timestamp() - make_interval(secs => timeout_seconds)
     order by j.enqueued_at
     limit max_jobs
     for update of r skip locked
  loop
    perform internal.fail_dispatch_job(stale, 'dispatch_timeout',
                                       format('not delivered or leased within %s s (DISPATCH_QUEUE_TIMEOUT_SECONDS)',
                                              timeout_seconds));
    return next stale;
  end loop;
end
$$;
comment on function internal.time_out_queued_dispatch_jobs(integer, integer) is
  'Reconciliation: jobs never delivered nor leased within timeout_seconds end error (dispatch_timeout), their reservation released.';
revoke execute on function internal.time_out_queued_dispatch_jobs(integer, integer) from public, anon, authenticated;
grant execute on function internal.time_out_queued_dispatch_jobs(integer, integer) to service_role;

create or replace function internal.dispatch_next_due(for_push boolean)
returns timestamptz
language sql stable
set search_path = ''
as $$
  -- When a job may next become takeable: a waiting job's due time or a hold's expiry; for push, not before a
  -- pause or an open circuit ends. The releaser and long-polling claimers sleep until then (or a NOTIFY).
  select case when for_push
              then greatest(min(j.due_at), (select greatest(e.paused_until, e.circuit_open_until)
                                              from internal.dispatch_endpoint e where e.id))
              else min(j.due_at) end
    from internal.dispatch_jobs j where j.due_at is not null
$$;
comment on function internal.dispatch_next_due(boolean) is
  'The earliest time a job may become takeable (null: nothing waits or is held); for push, after any pause or open circuit.';
revoke execute on function internal.dispatch_next_due(boolean) from public, anon, authenticated;
grant execute on function internal.dispatch_next_due(boolean) to service_role;

create or replace function internal.dispatch_health()
returns table (queued bigint, ready bigint, oldest_waiting_seconds double precision, sending bigint, leased bigint,
               leases_expired bigint, delivered bigint, failed bigint, enabled boolean, disabled_reason text,
               circuit_open boolean, consecutive_failures integer, paused boolean)
language sql stable
set search_path = ''
as $$
  select (select count(*) from internal.dispatch_jobs j where j.state = 'queued'),
         (select count(*) from internal.dispatch_jobs j where j.due_at <= clock_timestamp()),
         coalesce(extract(epoch from clock_timestamp() - (
           select min(j.enqueued_at) from internal.dispatch_jobs j where j.state in ('queued', 'sending')))::float8, 0),
         (select count(*) from internal.dispatch_jobs j where j.state = 'sending'),
         (select count(*) from internal.dispatch_jobs j where j.state = 'leased'),
         (select count(*) from internal.dispatch_jobs j where j.state = 'leased' and j.due_at <= clock_timestamp()),
         (select count(*) from internal.dispatch_jobs j where j.state = 'delivered'),
         (select count(*) from internal.dispatch_jobs j
           where j.outcome in ('dispatch_failed', 'dispatch_timeout', 'source_image_not_readable')),
         e.enabled, e.disabled_reason, coalesce(e.circuit_open_until > clock_timestamp(), false),
         e.consecutive_failures, coalesce(e.paused_until > clock_timestamp(), false)
    from internal.dispatch_endpoint e where e.id
$$;
comment on function internal.dispatch_health() is
  'Queue depth (queued, ready now), the oldest waiting job''s age, attempts and leases in flight, expired leases, delivered, failed, and the endpoint''s state (metrics, segbase status).';
revoke execute on function internal.dispatch_health() from public, anon, authenticated;
grant execute on function internal.dispatch_health() to service_role;
