-- Why: an object's bytes live outside PostgreSQL (a file or an S3 object named by the row's `version`), so the
-- database keeps two ledgers that make every path safe: an upload announces its blob before writing it (so a blob
-- whose upload died is found and removed), and every row deletion or version change queues the old blob for
-- removal, whatever deleted the row — the API, a cascade from a deleted result or user, the cleanup job or plain
-- SQL. Bytes are removed only after the row that pointed at them is gone, so a row never points at missing bytes.

create table if not exists internal.storage_upload_intents (
  version text primary key,
  bucket_id text not null,
  state text not null default 'writing' constraint storage_upload_intents_state check (state in ('writing', 'abandoned')),
  created_at timestamptz not null default now()
);
comment on table internal.storage_upload_intents is
  'Blobs being written: one row from before the first byte until the object row commits (or the janitor abandons it).';
create index if not exists storage_upload_intents_created_at_idx on internal.storage_upload_intents (created_at);
alter table internal.storage_upload_intents enable row level security;
revoke all on internal.storage_upload_intents from public, anon, authenticated;
grant select, insert, update, delete on internal.storage_upload_intents to service_role;

create table if not exists internal.storage_garbage (
  id bigint generated always as identity primary key,
  version text not null,
  bucket_id text,
  name text,
  queued_at timestamptz not null default now()
);
comment on table internal.storage_garbage is
  'Blobs no row points at any more (object deleted or overwritten), waiting for the storage janitor to remove them.';
create index if not exists storage_garbage_queued_at_idx on internal.storage_garbage (queued_at);
alter table internal.storage_garbage enable row level security;
revoke all on internal.storage_garbage from public, anon, authenticated;
grant select, insert, update, delete on internal.storage_garbage to service_role;

-- An object row claims its blob's intent in the transaction that makes it visible. If the janitor has already
-- abandoned that intent (the upload outlived STORAGE_UPLOAD_TIMEOUT_SECONDS and its bytes are being removed), the
-- row must not commit: it would point at bytes that are going away.
create or replace function internal.storage_claim_upload_intent() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  claimed_state text;
begin
  if new.version is null or (tg_op = 'UPDATE' and new.version is not distinct from old.version) then
    return new;
  end if;
  delete from internal.storage_upload_intents where version = new.version returning state into claimed_state;
  if claimed_state = 'abandoned' then
    raise exception using
      errcode = 'PT408',
      message = 'The upload took too long and was abandoned; upload the object again',
      hint = 'upload_abandoned';
  end if;
  return new;
end
$$;
comment on function internal.storage_claim_upload_intent() is
  'BEFORE INSERT/UPDATE OF version on storage.objects: removes the blob''s upload intent; refuses (PT408) an abandoned one.';
revoke execute on function internal.storage_claim_upload_intent() from public, anon, authenticated;

drop trigger if exists segbase_claim_upload_intent on storage.objects;
create trigger segbase_claim_upload_intent before insert or update of version on storage.objects
  for each row execute function internal.storage_claim_upload_intent();

create or replace function internal.storage_queue_deleted_blobs() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into internal.storage_garbage (version, bucket_id, name)
  select gone.version, gone.bucket_id, gone.name from gone_objects gone where gone.version is not null;
  return null;
end
$$;
comment on function internal.storage_queue_deleted_blobs() is
  'AFTER DELETE on storage.objects: queues the blobs of the deleted rows for the storage janitor.';
revoke execute on function internal.storage_queue_deleted_blobs() from public, anon, authenticated;

drop trigger if exists segbase_queue_deleted_blobs on storage.objects;
create trigger segbase_queue_deleted_blobs after delete on storage.objects
  referencing old table as gone_objects
  for each statement execute function internal.storage_queue_deleted_blobs();

create or replace function internal.storage_queue_replaced_blobs() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into internal.storage_garbage (version, bucket_id, name)
  select before.version, before.bucket_id, before.name
    from old_objects before join new_objects after on after.id = before.id
   where before.version is not null and before.version is distinct from after.version;
  return null;
end
$$;
comment on function internal.storage_queue_replaced_blobs() is
  'AFTER UPDATE on storage.objects: queues the blob an overwrite (upsert) replaced for the storage janitor.';
revoke execute on function internal.storage_queue_replaced_blobs() from public, anon, authenticated;

drop trigger if exists segbase_queue_replaced_blobs on storage.objects;
create trigger segbase_queue_replaced_blobs after update on storage.objects
  referencing old table as old_objects new table as new_objects
  for each statement execute function internal.storage_queue_replaced_blobs();
