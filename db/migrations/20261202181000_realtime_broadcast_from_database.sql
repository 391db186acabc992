-- Why: Broadcast from the database. `realtime.send()` and `realtime.broadcast_changes()` (the bootstrap's, as a
-- hosted Supabase project has them) insert into realtime.messages; Supabase Realtime turns each insert into a
-- broadcast through logical replication. segbase captures the insert into its outbox in the same transaction,
-- so the relay publishes it only after commit (a rolled-back send broadcasts nothing), at least once, with the
-- row's id as `meta.id`.
create or replace function internal.capture_realtime_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into internal.realtime_outbox (schema_name, table_name, op, owner_id, pk, record)
  values (tg_table_schema, tg_table_name, 'INSERT', null, jsonb_build_object('id', new.id),
          jsonb_build_object('id', new.id, 'topic', new.topic, 'event', new.event, 'payload', new.payload,
                             'private', coalesce(new.private, false)));
  perform pg_notify('segbase_realtime_outbox', '');
  return null;
end
$$;
comment on function internal.capture_realtime_message() is
  'AFTER INSERT trigger on realtime.messages (broadcasts): writes internal.realtime_outbox, delivered by the relay after commit.';
revoke execute on function internal.capture_realtime_message() from public, anon, authenticated;

drop trigger if exists segbase_broadcast_capture on realtime.messages;
create trigger segbase_broadcast_capture after insert on realtime.messages
  for each row when (new.extension = 'broadcast') execute function internal.capture_realtime_message();

-- Retention of broadcast messages (replay reads them): the relay deletes rows older than the setting. A function,
-- so service_role needs no DELETE on realtime.messages.
create or replace function internal.prune_realtime_messages(retention_hours int, batch int default 5000) returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  removed int;
begin
  delete from realtime.messages
   where (id, inserted_at) in (select m.id, m.inserted_at from realtime.messages m
                                where m.inserted_at < localtimestamp - make_interval(hours => retention_hours)
                                limit batch);
  get diagnostics removed = row_count;
  return removed;
end
$$;
comment on function internal.prune_realtime_messages(int, int) is
  'Delete realtime.messages rows older than the retention (Broadcast Replay reads the rest); called by the relay.';
revoke execute on function internal.prune_realtime_messages(int, int) from public, anon, authenticated;
grant execute on function internal.prune_realtime_messages(int, int) to service_role;
