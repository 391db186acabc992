-- Why: dispatch owns cancelling and retrying a job (its cancel also stops attempts and leases, and records the
-- job's outcome as cancelled), so the console's actions call dispatch's functions, each adding its audit row in the
-- same transaction: one way to cancel, whatever the path.

create or replace function internal.cancel_segmentation_result(operator_id uuid, result_id uuid, reason text)
returns table (cancelled boolean, status text, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  before_status text;
  outcome text;
  audit bigint;
begin
  select r.status::text into before_status from public.segmentation_results r
   where r.id = cancel_segmentation_result.result_id;
  outcome := internal.cancel_dispatch_job(result_id);
  if outcome = 'missing' then
    raise exception using errcode = 'P0002', message = 'no such result', hint = 'result_not_found';
  end if;
  if outcome <> 'cancelled' then
    return query select false, (select r.status::text from public.segmentation_results r
                                 where r.id = cancel_segmentation_result.result_id), null::bigint;
    return;
  end if;
  audit := internal.record_operator_action(operator_id, 'result.cancel', 'result', result_id::text,
                                           jsonb_build_object('status', before_status),
                                           jsonb_build_object('status', 'error', 'error', 'cancelled'), reason);
  return query select true, 'error'::text, audit;
end
$$;
comment on function internal.cancel_segmentation_result(uuid, uuid, text) is
  'Cancel an unfinished job through dispatch (internal.cancel_dispatch_job: result error with metadata.error = cancelled, reservation released, no attempt or lease after commit), audited; a finished result is left as it is (cancelled = false).';

create or replace function internal.retry_failed_dispatch(operator_id uuid, result_id uuid)
returns table (action text, job_id uuid, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  outcome record;
  audit bigint;
begin
  if not exists (select from public.segmentation_results r where r.id = retry_failed_dispatch.result_id) then
    raise exception using errcode = 'P0002', message = 'no such result', hint = 'result_not_found';
  end if;
  select r.action, r.new_job_id into outcome from internal.retry_dispatch_job(result_id) r;
  if outcome.action not in ('due_now', 'resubmitted') then
    return query select outcome.action, null::uuid, null::bigint;
    return;
  end if;
  audit := internal.record_operator_action(operator_id, 'dispatch.retry', 'result', result_id::text, null,
                                           jsonb_build_object('action', outcome.action, 'job_id', outcome.new_job_id),
                                           null);
  return query select outcome.action, outcome.new_job_id, audit;
end
$$;
comment on function internal.retry_failed_dispatch(uuid, uuid) is
  'Retry a dispatch through internal.retry_dispatch_job (a waiting job becomes due now; a failed or timed-out one is resubmitted as a new result), audited; not_retryable and missing change nothing.';
revoke execute on function internal.retry_failed_dispatch(uuid, uuid) from public, anon, authenticated;
grant execute on function internal.retry_failed_dispatch(uuid, uuid) to service_role;

create or replace function internal.reenable_dispatch(operator_id uuid)
returns table (was_disabled boolean, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  before jsonb;
  audit bigint;
  was boolean;
begin
  select jsonb_build_object('enabled', e.enabled, 'disabled_reason', e.disabled_reason,
                            'consecutive_failures', e.consecutive_failures,
                            'circuit_open', coalesce(e.circuit_open_until > clock_timestamp(), false))
    into before from internal.dispatch_endpoint e where e.id;
  was := internal.enable_dispatch();
  audit := internal.record_operator_action(operator_id, 'dispatch.enable', 'dispatch_endpoint', null, before,
                                           jsonb_build_object('enabled', true), null);
  return query select was, audit;
end
$$;
comment on function internal.reenable_dispatch(uuid) is
  'Re-enable push dispatch and close its circuit breaker (internal.enable_dispatch), audited with the endpoint''s state before.';
revoke execute on function internal.reenable_dispatch(uuid) from public, anon, authenticated;
grant execute on function internal.reenable_dispatch(uuid) to service_role;
