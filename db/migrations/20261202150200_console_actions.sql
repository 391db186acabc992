-- Why: the operator console's actions are SQL functions, each doing its change and its audit row in the caller's
-- transaction, so the rules hold whatever calls them (console, CLI, psql as service_role) and a retried or double
-- submitted action changes nothing twice: replay moves only a rejected event, cancel only an unfinished result,
-- ban and role changes only when the state differs.

create or replace function internal.replay_webhook_event(operator_id uuid, event_id uuid)
returns table (replayed boolean, state text, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  event internal.webhook_inbox;
  audit bigint;
begin
  select * into event from internal.webhook_inbox i where i.id = replay_webhook_event.event_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such webhook event', hint = 'event_not_found';
  end if;
  if event.state <> 'rejected' then
    -- received (will be applied) or already final for good: replaying changes nothing, so a double click or a
    -- second operator never queues it twice nor charges twice.
    return query select false, event.state, null::bigint;
    return;
  end if;
  -- Back to received with a fresh attempts budget; enqueued_at = now() keeps the sweeper from queueing it again
  -- before the console's own message arrives.
  update internal.webhook_inbox i
     set state = 'received', reason = null, attempts = 0, finished_at = null, enqueued_at = now()
   where i.id = event.id;
  audit := internal.record_operator_action(
    operator_id, 'webhook.replay', 'webhook_event', event.id::text,
    jsonb_build_object('state', event.state, 'reason', event.reason, 'attempts', event.attempts,
                       'finished_at', event.finished_at, 'last_attempt_at', event.last_attempt_at),
    jsonb_build_object('state', 'received'),
    null);
  return query select true, 'received'::text, audit;
end
$$;
comment on function internal.replay_webhook_event(uuid, uuid) is
  'Move a rejected inbox event back to received (attempts reset) and audit its earlier outcome; any other state is left as it is (replayed = false). The caller queues the id after commit.';
revoke execute on function internal.replay_webhook_event(uuid, uuid) from public, anon, authenticated;
grant execute on function internal.replay_webhook_event(uuid, uuid) to service_role;

create or replace function internal.replay_rejected_webhook_events(operator_id uuid, received_from timestamptz,
                                                                   received_to timestamptz, max_events integer)
returns setof uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  candidate uuid;
begin
  if max_events is null or max_events < 1 then
    raise exception using errcode = '22023', message = 'max_events must be at least 1', hint = 'invalid_limit';
  end if;
  for candidate in
    select i.id from internal.webhook_inbox i
     where i.state = 'rejected'
       and i.received_at >= coalesce(received_from, '-infinity')
       and i.received_at < coalesce(received_to, 'infinity')
     order by i.received_at
     limit max_events
     for update skip locked
  loop
    if (select r.replayed from internal.replay_webhook_event(operator_id, candidate) r) then
      return next candidate;
    end if;
  end loop;
end
$$;
comment on function internal.replay_rejected_webhook_events(uuid, timestamptz, timestamptz, integer) is
  'Bulk replay: up to max_events rejected events received in [received_from, received_to), oldest first, each audited; returns the replayed ids to queue after commit.';
revoke execute on function internal.replay_rejected_webhook_events(uuid, timestamptz, timestamptz, integer)
  from public, anon, authenticated;
grant execute on function internal.replay_rejected_webhook_events(uuid, timestamptz, timestamptz, integer)
  to service_role;

create or replace function internal.cancel_segmentation_result(operator_id uuid, result_id uuid, reason text)
returns table (cancelled boolean, status text, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_status public.segmentation_status;
  audit bigint;
begin
  select r.status into current_status from public.segmentation_results r
   where r.id = cancel_segmentation_result.result_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such result', hint = 'result_not_found';
  end if;
  if current_status not in ('pending', 'processing') then
    return query select false, current_status::text, null::bigint;
    return;
  end if;
  -- Through the status machine like any writer: error is final and releases the reservation (nothing charged);
  -- a webhook arriving later is rejected as an illegal transition.
  update public.segmentation_results r
     set status = 'error',
         metadata = r.metadata || jsonb_build_object('error', 'cancelled', 'cancelled_at', now(),
                                                     'cancel_reason', nullif(btrim(reason), ''))
   where r.id = cancel_segmentation_result.result_id;
  audit := internal.record_operator_action(operator_id, 'result.cancel', 'result', result_id::text,
                                           jsonb_build_object('status', current_status),
                                           jsonb_build_object('status', 'error'), reason);
  return query select true, 'error'::text, audit;
end
$$;
comment on function internal.cancel_segmentation_result(uuid, uuid, text) is
  'Cancel an unfinished (pending/processing) result: status error with metadata.error = cancelled, reservation released, audited; a finished result is left as it is (cancelled = false).';
revoke execute on function internal.cancel_segmentation_result(uuid, uuid, text) from public, anon, authenticated;
grant execute on function internal.cancel_segmentation_result(uuid, uuid, text) to service_role;

create or replace function internal.set_user_ban(operator_id uuid, user_id uuid, banned boolean, reason text)
returns table (changed boolean, banned_until timestamptz, revoked_sessions uuid[], audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  previous timestamptz;
  next_value timestamptz;
  revoked uuid[] := '{}';
  audit bigint;
begin
  select u.banned_until into previous from auth.users u where u.id = set_user_ban.user_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such user', hint = 'user_not_found';
  end if;
  if banned and set_user_ban.user_id = operator_id then
    raise exception using errcode = '22023', message = 'an operator cannot ban themselves', hint = 'self_ban';
  end if;
  if banned = (previous is not null and previous > now()) then
    return query select false, previous, revoked, null::bigint;
    return;
  end if;
  -- GoTrue's idiom for "banned until further notice" is a ban_duration of 876000h (100 years).
  next_value := case when banned then now() + interval '876000 hours' else null end;
  update auth.users u set banned_until = next_value, updated_at = now() where u.id = set_user_ban.user_id;
  if banned then
    -- Sign the user out everywhere: their refresh tokens die with the sessions, and access tokens stop working
    -- as soon as their session is gone.
    with gone as (delete from auth.sessions s where s.user_id = set_user_ban.user_id returning s.id)
    select coalesce(array_agg(gone.id), '{}') into revoked from gone;
  end if;
  audit := internal.record_operator_action(operator_id, case when banned then 'user.ban' else 'user.unban' end,
                                           'user', user_id::text, jsonb_build_object('banned_until', previous),
                                           jsonb_build_object('banned_until', next_value,
                                                              'sessions_revoked', cardinality(revoked)),
                                           reason);
  return query select true, next_value, revoked, audit;
end
$$;
comment on function internal.set_user_ban(uuid, uuid, boolean, text) is
  'Ban (banned_until = now + 876000h, every session revoked) or unban a user, audited; no change when already in that state.';
revoke execute on function internal.set_user_ban(uuid, uuid, boolean, text) from public, anon, authenticated;
grant execute on function internal.set_user_ban(uuid, uuid, boolean, text) to service_role;

create or replace function internal.set_operator_role(email text, make_operator boolean)
returns table (user_id uuid, changed boolean, audit_id bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target auth.users;
  was_operator boolean;
  audit bigint;
begin
  select * into target from auth.users u
   where u.email = lower(btrim(set_operator_role.email)) and u.deleted_at is null and u.is_anonymous is false
   order by u.created_at limit 1 for update;
  if not found then
    raise exception using errcode = 'P0002', message = format('no user with email %s', lower(btrim(email))),
                          hint = 'user_not_found';
  end if;
  was_operator := coalesce(target.raw_app_meta_data ->> 'segbase_role', '') = 'operator';
  if was_operator = make_operator then
    return query select target.id, false, null::bigint;
    return;
  end if;
  update auth.users u
     set raw_app_meta_data = case when make_operator
                                  then coalesce(u.raw_app_meta_data, '{}') || '{"segbase_role": "operator"}'
                                  else coalesce(u.raw_app_meta_data, '{}') - 'segbase_role' end,
         updated_at = now()
   where u.id = target.id;
  audit := internal.record_operator_action(null, case when make_operator then 'operator.grant' else 'operator.revoke' end,
                                           'user', target.id::text,
                                           jsonb_build_object('segbase_role', target.raw_app_meta_data -> 'segbase_role'),
                                           jsonb_build_object('segbase_role', case when make_operator then 'operator' end),
                                           'segbase operator ' || case when make_operator then 'grant' else 'revoke' end);
  return query select target.id, true, audit;
end
$$;
comment on function internal.set_operator_role(text, boolean) is
  'segbase operator grant|revoke EMAIL: set or remove app_metadata.segbase_role = operator, audited as the CLI.';
revoke execute on function internal.set_operator_role(text, boolean) from public, anon, authenticated;
grant execute on function internal.set_operator_role(text, boolean) to service_role;
