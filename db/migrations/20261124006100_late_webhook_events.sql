-- Why: reconciliation moves a result stuck past RESULT_TIMEOUT_SECONDS to `error` (metadata.timed_out_at set), and
-- the user is told it failed; a `done` arriving later must charge nothing. The pipeline already rejects error → done
-- (both final); this trigger names such a rejection `late` so operators and metrics can tell it from other illegal
-- transitions. It refines the reason only, never the state, whatever code path finalises the inbox row.
create or replace function internal.mark_late_webhook_event() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if exists (select 1 from public.segmentation_results r
              where r.id = new.result_id and r.status = 'error' and r.metadata ? 'timed_out_at') then
    new.reason := format('late: the result timed out at %s (RESULT_TIMEOUT_SECONDS) before this %s event arrived; '
                         'nothing charged', (select r.metadata ->> 'timed_out_at' from public.segmentation_results r
                                             where r.id = new.result_id), new.event_status);
  end if;
  return new;
end
$$;
comment on function internal.mark_late_webhook_event() is
  'BEFORE UPDATE on internal.webhook_inbox: a done event rejected because reconciliation timed its result out gets the reason "late: ...".';
revoke execute on function internal.mark_late_webhook_event() from public, anon, authenticated;

drop trigger if exists webhook_inbox_mark_late on internal.webhook_inbox;
create trigger webhook_inbox_mark_late before update of state on internal.webhook_inbox
  for each row
  when (old.state = 'received' and new.state = 'rejected' and new.event_status = 'done')
  execute function internal.mark_late_webhook_event();
