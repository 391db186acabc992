-- Why: a result id is single-use for the life of the database. The charge, webhook deduplication, dispatch and the
-- mask path are all keyed on the result id, and the usage row of a completed result outlives it: were an id allowed
-- back after its result was deleted, every later completion under that id would find "already charged" and be
-- free. So every deleted id is kept in a tombstone, whatever deleted the row (its owner, cleanup, a cascade from
-- the user, TRUNCATE), and inserting an id that is live or tombstoned is refused with unique_violation (23505),
-- which the data API answers 409 in PostgREST's shape.
create table if not exists internal.deleted_result_ids (
  id uuid primary key,
  deleted_at timestamptz not null default now()
);
comment on table internal.deleted_result_ids is
  'Ids of deleted segmentation_results (tombstones, never removed): a result id is never used twice.';

alter table internal.deleted_result_ids enable row level security;
revoke all on internal.deleted_result_ids from public, anon, authenticated;
grant select on internal.deleted_result_ids to service_role;

create or replace function internal.tombstone_deleted_result_ids() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'TRUNCATE' then
    insert into internal.deleted_result_ids (id)
    select r.id from public.segmentation_results r
    on conflict (id) do nothing;
  else
    insert into internal.deleted_result_ids (id)
    select d.id from deleted_rows d
    on conflict (id) do nothing;
  end if;
  return null;
end
$$;
comment on function internal.tombstone_deleted_result_ids() is
  'AFTER DELETE (transition table deleted_rows) and BEFORE TRUNCATE on segmentation_results: records every deleted id in internal.deleted_result_ids.';
revoke execute on function internal.tombstone_deleted_result_ids() from public, anon, authenticated;

-- Statement level with a transition table: cleanup deletes thousands of rows per statement, one insert covers them.
-- Cascaded deletes (a user deleted) run DELETE statements on this table too, so they fire it as well.
drop trigger if exists segmentation_results_tombstone_deleted_ids on public.segmentation_results;
create trigger segmentation_results_tombstone_deleted_ids after delete on public.segmentation_results
  referencing old table as deleted_rows
  for each statement execute function internal.tombstone_deleted_result_ids();
-- TRUNCATE fires no delete trigger; service_role holds the privilege, so tombstone what it is about to remove.
drop trigger if exists segmentation_results_tombstone_truncated_ids on public.segmentation_results;
create trigger segmentation_results_tombstone_truncated_ids before truncate on public.segmentation_results
  for each statement execute function internal.tombstone_deleted_result_ids();

create or replace function internal.refuse_reused_result_id() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    if new.id is distinct from old.id then
      raise exception using
        errcode = 'PT409',
        message = 'The id of a segmentation result cannot change',
        detail = 'The charge, the webhook events and the dispatch of a result are keyed on its id.',
        hint = 'result_id_immutable';
    end if;
    return new;
  end if;
  if exists (select from internal.deleted_result_ids t where t.id = new.id) then
    raise exception using
      errcode = 'unique_violation',
      message = format('The result id %s was used before: a result id is never used twice', new.id),
      detail = format('Key (id)=(%s) belonged to a deleted result.', new.id),
      hint = 'Leave id out (the default is gen_random_uuid()) or choose a new uuid.',
      constraint = 'segmentation_results_pkey',
      table = 'segmentation_results',
      schema = 'public',
      column = 'id';
  end if;
  return new;
end
$$;
comment on function internal.refuse_reused_result_id() is
  'BEFORE and AFTER INSERT on segmentation_results: refuses (23505) an id found in internal.deleted_result_ids; BEFORE UPDATE OF id: ids never change (PT409 result_id_immutable).';
revoke execute on function internal.refuse_reused_result_id() from public, anon, authenticated;

-- BEFORE INSERT, named to run before the credit reservation, so a reused id is refused as such (not as 402).
drop trigger if exists segmentation_results_a_single_use_id on public.segmentation_results;
create trigger segmentation_results_a_single_use_id before insert on public.segmentation_results
  for each row execute function internal.refuse_reused_result_id();
-- Checked once more AFTER INSERT: the row is then in the primary key index, so a transaction that was deleting the
-- same id has committed (the insert waited on it), and under READ COMMITTED this new statement sees its tombstone.
drop trigger if exists segmentation_results_single_use_id_recheck on public.segmentation_results;
create trigger segmentation_results_single_use_id_recheck after insert on public.segmentation_results
  for each row execute function internal.refuse_reused_result_id();
drop trigger if exists segmentation_results_id_immutable on public.segmentation_results;
create trigger segmentation_results_id_immutable before update of id on public.segmentation_results
  for each row execute function internal.refuse_reused_result_id();
