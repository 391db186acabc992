-- Why: realtime events are captured in the database, in the writing transaction, so every committed change
-- (worker, data API, cleanup, plain SQL) becomes exactly one outbox row and a rolled-back one becomes none;
-- `segbase relay` publishes the rows to Redis and marks them sent (docs/REALTIME.md).
create table if not exists internal.realtime_outbox (
  id bigint generated always as identity primary key,
  schema_name text not null,
  table_name text not null,
  op text not null constraint realtime_outbox_op check (op in ('INSERT', 'UPDATE', 'DELETE')),
  owner_id uuid,
  pk jsonb not null,
  record jsonb,
  captured_at timestamptz not null default clock_timestamp(),
  sent_at timestamptz
);
comment on table internal.realtime_outbox is
  'One row per committed INSERT/UPDATE/DELETE on a supabase_realtime table; the relay publishes unsent rows in id order and sets sent_at.';
comment on column internal.realtime_outbox.owner_id is
  'The user whose RLS lets them SELECT the row (new row for INSERT/UPDATE, old row for DELETE); routing key.';
comment on column internal.realtime_outbox.pk is 'Primary-key columns of the row (of the old row for UPDATE/DELETE).';
comment on column internal.realtime_outbox.record is 'The new row as jsonb (null for DELETE).';
comment on column internal.realtime_outbox.sent_at is 'Set by the relay once published to Redis; null = not yet sent.';

-- The relay's only read: unsent rows in id order.
create index if not exists realtime_outbox_unsent_idx on internal.realtime_outbox (id) where sent_at is null;
create index if not exists realtime_outbox_sent_at_idx on internal.realtime_outbox (sent_at) where sent_at is not null;

alter table internal.realtime_outbox enable row level security;
revoke all on internal.realtime_outbox from public, anon, authenticated;
grant select, delete on internal.realtime_outbox to service_role;
grant update (sent_at) on internal.realtime_outbox to service_role;

create or replace function internal.capture_realtime_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  owner_column text := tg_argv[0];
  source jsonb;
  new_row jsonb;
  key jsonb := '{}'::jsonb;
  i integer;
begin
  if tg_op = 'DELETE' then
    source := to_jsonb(old);
  else
    new_row := to_jsonb(new);
    source := case when tg_op = 'UPDATE' then to_jsonb(old) else new_row end;
  end if;
  for i in 1 .. tg_nargs - 1 loop
    key := key || jsonb_build_object(tg_argv[i], source -> tg_argv[i]);
  end loop;
  insert into internal.realtime_outbox (schema_name, table_name, op, owner_id, pk, record)
  values (tg_table_schema, tg_table_name, tg_op,
          (coalesce(new_row, source) ->> owner_column)::uuid, key, new_row);
  -- One notification per transaction (identical payloads are folded), delivered only on commit.
  perform pg_notify('segbase_realtime_outbox', '');
  return null;
end
$$;
comment on function internal.capture_realtime_change() is
  'AFTER ROW trigger for supabase_realtime tables: args (owner_column, pk_column...); writes internal.realtime_outbox and NOTIFYs segbase_realtime_outbox.';
revoke execute on function internal.capture_realtime_change() from public, anon, authenticated;

create or replace function internal.attach_realtime_capture(target regclass, owner_column text) returns void
language plpgsql
set search_path = ''
as $$
declare
  key_columns text[];
begin
  select array_agg(a.attname::text order by k.ord)
    into key_columns
    from pg_index i
    cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = target and i.indisprimary;
  if key_columns is null then
    raise exception 'realtime capture needs a primary key on %', target;
  end if;
  execute format('drop trigger if exists realtime_capture on %s', target);
  execute format('create trigger realtime_capture after insert or update or delete on %s '
                 'for each row execute function internal.capture_realtime_change(%s)',
                 target, array_to_string(array(select quote_literal(c) from unnest(owner_column || key_columns) c), ', '));
end
$$;
comment on function internal.attach_realtime_capture(regclass, text) is
  'Create the realtime_capture AFTER ROW trigger on a published table, routed by owner_column (migrations only).';
revoke execute on function internal.attach_realtime_capture(regclass, text) from public, anon, authenticated, service_role;

select internal.attach_realtime_capture('public.segmentation_results', 'user_id');
