-- Why: the `realtime` schema a hosted Supabase project has (supabase/realtime, lib/realtime/tenants/repo/migrations:
-- `realtime.messages` with RLS for private channels, `realtime.topic()`, `realtime.send()`,
-- `realtime.broadcast_changes()`), created only where missing, and the event trigger that attaches segbase's
-- change capture to every table added to the `supabase_realtime` publication (segbase reads changes from an
-- outbox filled by triggers, not from logical decoding).
create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

-- Unpartitioned here (Supabase partitions it by day); the same columns and key, so policies written against
-- Supabase's table apply unchanged.
create table if not exists realtime.messages (
  id uuid not null default gen_random_uuid(),
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  primary key (id, inserted_at)
);
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

do $$
begin
  if to_regprocedure('realtime.topic()') is null then
    create function realtime.topic() returns text language sql stable as $fn$
      select nullif(current_setting('realtime.topic', true), '')::text;
    $fn$;
  end if;
  grant execute on function realtime.topic() to anon, authenticated, service_role;

  if to_regprocedure('realtime.send(jsonb, text, text, boolean)') is null then
    create function realtime.send(payload jsonb, event text, topic text, private boolean default true) returns void
    language plpgsql as $fn$
    declare
      generated_id uuid;
      final_payload jsonb;
    begin
      begin
        generated_id := gen_random_uuid();
        if payload ? 'id' then
          final_payload := payload;
        else
          final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;
        execute format('set local realtime.topic to %L', topic);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
      exception
        when others then
          raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
      end;
    end
    $fn$;
  end if;
  grant execute on function realtime.send(jsonb, text, text, boolean) to anon, authenticated, service_role;

  if to_regprocedure('realtime.broadcast_changes(text, text, text, text, text, record, record, text)') is null then
    create function realtime.broadcast_changes(topic_name text, event_name text, operation text, table_name text,
                                               table_schema text, new record, old record,
                                               level text default 'ROW') returns void
    language plpgsql as $fn$
    declare
      row_data jsonb := '{}'::jsonb;
    begin
      if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
      end if;
      if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
        row_data := jsonb_build_object('old_record', old, 'record', new, 'operation', operation,
                                       'table', table_name, 'schema', table_schema);
        perform realtime.send(row_data, event_name, topic_name);
      else
        raise exception 'Unexpected operation type: %', operation;
      end if;
    exception
      when others then
        raise exception 'Failed to process the row: %', sqlerrm;
    end
    $fn$;
  end if;
  grant execute on function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
    to anon, authenticated, service_role;
end
$$;

-- segbase's own: after `alter publication supabase_realtime add/drop/set table ...`, attach (or drop) the capture
-- trigger on the tables concerned. An event trigger function lives in `extensions`, like Supabase's own
-- (`extensions.pgrst_ddl_watch`). The work is done by `internal.sync_realtime_capture()`, which the app's
-- migrations create; before they ran (a bootstrap-only database) the trigger does nothing.
create or replace function extensions.segbase_realtime_publication_watch() returns event_trigger
language plpgsql
set search_path = ''
as $$
begin
  if to_regprocedure('internal.sync_realtime_capture()') is not null then
    perform internal.sync_realtime_capture();
  end if;
end
$$;
revoke execute on function extensions.segbase_realtime_publication_watch() from public;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'segbase_realtime_publication') then
    create event trigger segbase_realtime_publication on ddl_command_end
      when tag in ('ALTER PUBLICATION', 'CREATE PUBLICATION')
      execute function extensions.segbase_realtime_publication_watch();
  end if;
end
$$;
