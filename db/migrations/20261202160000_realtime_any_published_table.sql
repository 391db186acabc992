-- Why: any table added to the supabase_realtime publication is captured at once (the bootstrap's event trigger calls
-- internal.sync_realtime_capture()), routed by owner where its policies are exactly "the owner reads the row" and
-- otherwise evaluated under RLS as each subscriber (internal.realtime_visible_to, batched per change).

-- The owner column of a table whose SELECT visibility is exactly `user_id = auth.uid()`: a uuid `user_id` referencing
-- auth.users, RLS on, `authenticated` may read the table, and every SELECT policy is a permissive owner check (no
-- restrictive one, which could hide an owner's row). Anything else is null: the table is served by RLS evaluation.
create or replace function internal.realtime_owner_column(target regclass) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  owner_check constant text := '^\(*(auth\.uid\(\)|\(selectauth\.uid\(\)asuid\))=user_id\)*$';
  reversed_check constant text := '^\(*user_id=(auth\.uid\(\)|\(selectauth\.uid\(\)asuid\))\)*$';
  policy record;
  found_one boolean := false;
begin
  if not exists (select from pg_class c where c.oid = target and c.relrowsecurity) then
    return null;
  end if;
  if not exists (
      select from pg_constraint k
        join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
       where k.conrelid = target and k.contype = 'f' and k.confrelid = 'auth.users'::regclass
         and array_length(k.conkey, 1) = 1 and a.attname = 'user_id' and a.atttypid = 'uuid'::regtype) then
    return null;
  end if;
  if not has_table_privilege('authenticated', target, 'SELECT') then
    return null;
  end if;
  for policy in
    select p.polpermissive, lower(regexp_replace(pg_get_expr(p.polqual, p.polrelid), '\s', '', 'g')) as qual
      from pg_policy p
     where p.polrelid = target and p.polcmd in ('r', '*')
  loop
    if not policy.polpermissive or policy.qual is null
       or not (policy.qual ~ owner_check or policy.qual ~ reversed_check) then
      return null;
    end if;
    found_one := true;
  end loop;
  return case when found_one then 'user_id' end;
end
$$;
comment on function internal.realtime_owner_column(regclass) is
  'user_id when a table''s SELECT policies are exactly the owner check (realtime routes its changes by owner), else null (RLS evaluation).';
revoke execute on function internal.realtime_owner_column(regclass) from public, anon, authenticated;

-- As before, and a null owner column means "no owner": the change is routed by RLS evaluation.
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
                 target, array_to_string(array(select quote_literal(c)
                                               from unnest(coalesce(owner_column, '') || key_columns) c), ', '));
end
$$;
comment on function internal.attach_realtime_capture(regclass, text) is
  'Create the realtime_capture AFTER ROW trigger on a published table, routed by owner_column (null: by RLS evaluation).';
revoke execute on function internal.attach_realtime_capture(regclass, text) from public, anon, authenticated, service_role;

-- Attach capture to published tables that lack it, drop it from tables that left the publication. Tables without a
-- primary key are skipped (a change is identified by its key); realtime refuses joins on them, naming the reason.
create or replace function internal.sync_realtime_capture() returns void
language plpgsql
set search_path = ''
as $$
declare
  target regclass;
begin
  for target in
    select c.oid::regclass
      from pg_publication_tables p
      join pg_namespace n on n.nspname = p.schemaname
      join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
     where p.pubname = 'supabase_realtime'
       and p.schemaname not in ('internal', 'realtime', 'auth', 'storage', 'extensions')
       and not exists (select from pg_trigger t where t.tgrelid = c.oid and t.tgname = 'realtime_capture')
       and exists (select from pg_index i where i.indrelid = c.oid and i.indisprimary)
  loop
    perform internal.attach_realtime_capture(target, internal.realtime_owner_column(target));
  end loop;
  for target in
    select c.oid::regclass
      from pg_trigger t
      join pg_class c on c.oid = t.tgrelid
      join pg_namespace n on n.oid = c.relnamespace
     where t.tgname = 'realtime_capture' and not t.tgisinternal
       and not exists (select from pg_publication_tables p
                        where p.pubname = 'supabase_realtime' and p.schemaname = n.nspname and p.tablename = c.relname)
  loop
    execute format('drop trigger realtime_capture on %s', target);
  end loop;
end
$$;
comment on function internal.sync_realtime_capture() is
  'Make the realtime_capture triggers follow the supabase_realtime publication (called by its event trigger).';
revoke execute on function internal.sync_realtime_capture() from public, anon, authenticated, service_role;

-- Which of `callers` ([{role, claims}], distinct subscribers of a change) may SELECT the row whose primary key is
-- `pk`, each evaluated under RLS as that caller: one round trip for all of them, as Supabase's realtime.apply_rls.
-- Runs as the API's login role (a member of every token role), so set_config('role') can switch between them; it
-- restores the caller's role at the end. Returns the 0-based positions of the callers who can see the row.
create or replace function internal.realtime_visible_to(target regclass, pk jsonb, callers jsonb) returns int[]
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
  seen boolean;
  visible int[] := '{}';
begin
  select string_agg(format('%I', a.attname), ', ' order by k.ord)
    into key_columns
    from pg_index i
    cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = target and i.indisprimary;
  if key_columns is null then
    return visible;
  end if;
  probe := format('select exists (select 1 from %s t where (%s) = (select %s from jsonb_populate_record(null::%s, $1) r))',
                  target, 't.' || replace(key_columns, ', ', ', t.'), 'r.' || replace(key_columns, ', ', ', r.'), target);
  for caller in select value from jsonb_array_elements(callers) loop
    if caller ->> 'role' not in ('anon', 'authenticated', 'service_role') then
      raise exception 'realtime_visible_to: % is not a token role', caller ->> 'role';
    end if;
    perform set_config('role', caller ->> 'role', true);
    perform set_config('request.jwt.claims', coalesce(caller -> 'claims', '{}')::text, true);
    begin
      execute probe using pk into seen;
    exception
      when insufficient_privilege then
        seen := false;
    end;
    if seen then
      visible := visible || position;
    end if;
    position := position + 1;
  end loop;
  perform set_config('role', restore_role, true);
  perform set_config('request.jwt.claims', coalesce(restore_claims, ''), true);
  return visible;
end
$$;
comment on function internal.realtime_visible_to(regclass, jsonb, jsonb) is
  'Positions of the [{role, claims}] callers whose RLS lets them SELECT the row with primary key pk (realtime fan-out).';
revoke execute on function internal.realtime_visible_to(regclass, jsonb, jsonb) from public, anon, authenticated;
grant execute on function internal.realtime_visible_to(regclass, jsonb, jsonb) to service_role;

select internal.sync_realtime_capture();
