-- Why: internal.release_due_dispatch_jobs (20261203190000) wrote the push releaser's rules out again — the in-flight
-- cap, the half-open probe, disabled/paused/open — beside internal.release_dispatch_jobs, which the queue's tests
-- call. Two copies of one rule can drift apart unseen; release_dispatch_jobs now returns the same release, row by
-- row, so the rules live in one function and the tests exercise the code the releaser runs.

create or replace function internal.release_dispatch_jobs(max_jobs integer, max_in_flight integer,
                                                          hold_seconds integer, circuit_failure_threshold integer)
returns table (result_id uuid, attempt_id uuid, attempts integer)
language sql
set search_path = ''
as $$
  select released.job, released.attempt, released.attempt_count
    from internal.release_due_dispatch_jobs(max_jobs, max_in_flight, hold_seconds, circuit_failure_threshold) due
   cross join lateral unnest(due.result_ids, due.attempt_ids, due.attempts)
                      as released(job, attempt, attempt_count)
$$;
