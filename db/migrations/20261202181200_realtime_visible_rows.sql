-- Why: postgres_changes recovery replays up to hundreds of changes to one rejoining caller; asking RLS about them
-- one round trip per change made a rejoin on an RLS-evaluated table cost ~16 ms per replayed change
-- (bench/realtime_rls.py). This asks about every row of one table in one query, as the caller, in one round trip.
create or replace function internal.realtime_visible_rows(target regclass, pks jsonb, caller jsonb) returns int[]
language plpgsql
set search_path = ''
as $$
declare
  restore_role constant text := current_setting('role');
  restore_claims constant text := current_setting('request.jwt.claims', true);
  key_columns text;
  probe text;
  visible int[];
begin
  select string_agg(format('%I', a.attname), ', ' order by k.ord)
    into key_columns
    from pg_index i
    cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = target and i.indisprimary;
  if key_columns is null then
    return '{}';
  end if;
  if caller ->> 'role' not in ('anon', 'authenticated', 'service_role') then
    raise exception 'realtime_visible_rows: % is not a token role', caller ->> 'role';
  end if;
  -- 0-based positions of the `pks` rows that exist and that the caller's RLS lets it SELECT.
  probe := format('select coalesce(array_agg(p.ord - 1 order by p.ord), ''{}'') '
                  'from jsonb_array_elements($1) with ordinality p(v, ord) '
                  'where exists (select 1 from %s t where (%s) = (select %s from jsonb_populate_record(null::%s, p.v) r))',
                  target, 't.' || replace(key_columns, ', ', ', t.'), 'r.' || replace(key_columns, ', ', ', r.'), target);
  perform set_config('role', caller ->> 'role', true);
  perform set_config('request.jwt.claims', coalesce(caller -> 'claims', '{}')::text, true);
  begin
    execute probe using pks into visible;
  exception
    when insufficient_privilege then
      visible := '{}';
  end;
  perform set_config('role', restore_role, true);
  perform set_config('request.jwt.claims', coalesce(restore_claims, ''), true);
  return visible;
end
$$;
comment on function internal.realtime_visible_rows(regclass, jsonb, jsonb) is
  'Positions of the primary keys pks (a jsonb array) whose rows the {role, claims} caller may SELECT under RLS (realtime recovery).';
revoke execute on function internal.realtime_visible_rows(regclass, jsonb, jsonb) from public, anon, authenticated;
grant execute on function internal.realtime_visible_rows(regclass, jsonb, jsonb) to service_role;

-- The live fan-out's batch: when changes of one table arrive together (a burst, or a backlog while the database
-- was busy), one round trip answers for all of them and all their subscribers: per distinct caller, one query over
-- every row (instead of one probe per change and caller). Returns (caller position, row position) pairs, 0-based.
create or replace function internal.realtime_visible_matrix(target regclass, pks jsonb, callers jsonb)
returns table (caller_pos int, row_pos int)
language plpgsql
set search_path = ''
as $$
declare
  restore_role constant text := current_setting('role');
  restore_claims constant text := current_setting('request.jwt.claims', true);
  key_columns text;
  probe text;
  caller jsonb;
  position int := 0;
  visible int[];
  row_position int;
begin
  select string_agg(format('%I', a.attname), ', ' order by k.ord)
    into key_columns
    from pg_index i
    cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = target and i.indisprimary;
  if key_columns is null then
    return;
  end if;
  probe := format('select coalesce(array_agg(p.ord - 1 order by p.ord), ''{}'') '
                  'from jsonb_array_elements($1) with ordinality p(v, ord) '
                  'where exists (select 1 from %s t where (%s) = (select %s from jsonb_populate_record(null::%s, p.v) r))',
                  target, 't.' || replace(key_columns, ', ', ', t.'), 'r.' || replace(key_columns, ', ', ', r.'), target);
  for caller in select value from jsonb_array_elements(callers) loop
    if caller ->> 'role' not in ('anon', 'authenticated', 'service_role') then
      raise exception 'realtime_visible_matrix: % is not a token role', caller ->> 'role';
    end if;
    perform set_config('role', caller ->> 'role', true);
    perform set_config('request.jwt.claims', coalesce(caller -> 'claims', '{}')::text, true);
    begin
      execute probe using pks into visible;
    exception
      when insufficient_privilege then
        visible := '{}';
    end;
    foreach row_position in array visible loop
      caller_pos := position;
      row_pos := row_position;
      return next;
    end loop;
    position := position + 1;
  end loop;
  perform set_config('role', restore_role, true);
  perform set_config('request.jwt.claims', coalesce(restore_claims, ''), true);
end
$$;
comment on function internal.realtime_visible_matrix(regclass, jsonb, jsonb) is
  'Which [{role, claims}] callers may SELECT which of the rows pks, under RLS (realtime fan-out, batched per table).';
revoke execute on function internal.realtime_visible_matrix(regclass, jsonb, jsonb) from public, anon, authenticated;
grant execute on function internal.realtime_visible_matrix(regclass, jsonb, jsonb) to service_role;
