-- Why: an upload by a user is usage: one usage_logs row (action `upload`) in the transaction that creates the
-- object, priced by internal.config `credits_per_upload` (default 0) and charged from the user's balance. The
-- trigger keys on the object's owner, so an upload through a signed upload URL a user created counts for that
-- user, and service_role uploads (masks: no owner) count for nobody. A copy is not an upload (the API marks its
-- transaction with Supabase Storage's `storage.operation` setting); an overwrite is.
create or replace function internal.record_storage_upload() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  price bigint := coalesce(internal.config_int('credits_per_upload'), 0);
begin
  if tg_op = 'UPDATE' and new.version is not distinct from old.version then
    return null;
  end if;
  if coalesce(current_setting('storage.operation', true), '') = 'storage.object.copy' then
    return null;
  end if;
  if not exists (select 1 from public.users_profile p where p.id = new.owner) then
    return null;  -- an owner without a profile (an external token's user) has no balance to record against
  end if;
  insert into public.usage_logs (user_id, action, credits_used, metadata)
  values (new.owner, 'upload', price,
          jsonb_build_object('object_id', new.id::text, 'bucket_id', new.bucket_id, 'name', new.name,
                             'size', (new.metadata ->> 'size')::bigint));
  if price > 0 then
    update public.users_profile set credits = credits - price where id = new.owner and credits >= price;
    if not found then
      raise exception using
        errcode = 'PT402',
        message = format('Insufficient credits: an upload costs %s', price),
        hint = 'insufficient_credits';
    end if;
  end if;
  return null;
end
$$;
comment on function internal.record_storage_upload() is
  'AFTER INSERT/UPDATE OF version on storage.objects with an owner: one usage_logs upload row and its charge (credits_per_upload).';
revoke execute on function internal.record_storage_upload() from public, anon, authenticated;

drop trigger if exists segbase_record_upload on storage.objects;
create trigger segbase_record_upload after insert or update of version on storage.objects
  for each row when (new.owner is not null) execute function internal.record_storage_upload();
