-- Why: a result's mask and a user's files must not outlive them. Deleting a result (by its owner, the cleanup job
-- or a cascade) deletes its mask object `masks/<user id>/<result id>.<ext>`; deleting a user deletes every object
-- they own and everything under their folder in `images` and `masks`. The object rows go in the same transaction;
-- their bytes follow through the storage janitor's queue (internal.storage_garbage).
create index if not exists objects_owner_id_idx on storage.objects (owner_id);

create or replace function internal.delete_masks_of_deleted_results() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- `<user>/<result>.` .. `<user>/<result>/`: every name starting with `<user>/<result>.` (in "C" order '/'
  -- follows '.'), as a range the (bucket_id, name collate "C") index answers.
  delete from storage.objects o
   using gone_results r
   where o.bucket_id = 'masks'
     and o.name collate "C" >= r.user_id::text || '/' || r.id::text || '.'
     and o.name collate "C" < r.user_id::text || '/' || r.id::text || '/';
  return null;
end
$$;
comment on function internal.delete_masks_of_deleted_results() is
  'AFTER DELETE on segmentation_results: deletes each result''s mask object masks/<user id>/<result id>.<ext>.';
revoke execute on function internal.delete_masks_of_deleted_results() from public, anon, authenticated;

drop trigger if exists segmentation_results_delete_masks on public.segmentation_results;
create trigger segmentation_results_delete_masks after delete on public.segmentation_results
  referencing old table as gone_results
  for each statement execute function internal.delete_masks_of_deleted_results();

create or replace function internal.delete_objects_of_deleted_users() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from storage.objects o using gone_users u where o.owner_id = u.id::text;
  -- `<user>/` .. `<user>0`: the user's folder ('0' follows '/' in "C" order).
  delete from storage.objects o
   using gone_users u
   where o.bucket_id in ('images', 'masks')
     and o.name collate "C" >= u.id::text || '/'
     and o.name collate "C" < u.id::text || '0';
  return null;
end
$$;
comment on function internal.delete_objects_of_deleted_users() is
  'AFTER DELETE on users_profile (a deleted auth user cascades here): deletes the user''s objects and folders.';
revoke execute on function internal.delete_objects_of_deleted_users() from public, anon, authenticated;

drop trigger if exists users_profile_delete_objects on public.users_profile;
create trigger users_profile_delete_objects after delete on public.users_profile
  referencing old table as gone_users
  for each statement execute function internal.delete_objects_of_deleted_users();
