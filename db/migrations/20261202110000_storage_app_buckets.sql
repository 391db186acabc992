-- Why: the app's two private buckets and who may touch which object. `images` holds what users upload for
-- segmentation, each under a folder named by their user id; `masks` holds what the inference backend produces,
-- written by service_role at `masks/<user id>/<result id>.<ext>` and readable by that user. Policies follow
-- Supabase's documented per-user-folder pattern (supabase/supabase:apps/docs/content/guides/storage/security/
-- access-control.mdx), so the same statements work on a hosted project.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('images', 'images', false, null, array['image/png', 'image/jpeg', 'image/webp']),
       ('masks', 'masks', false, null, array['image/png', 'image/webp'])
on conflict (id) do nothing;

drop policy if exists "Users can upload images to their own folder" on storage.objects;
create policy "Users can upload images to their own folder" on storage.objects
  for insert to authenticated
  with check (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid()::text));

drop policy if exists "Users can read images in their own folder" on storage.objects;
create policy "Users can read images in their own folder" on storage.objects
  for select to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid()::text));

drop policy if exists "Users can update images in their own folder" on storage.objects;
create policy "Users can update images in their own folder" on storage.objects
  for update to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid()::text))
  with check (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid()::text));

drop policy if exists "Users can delete images in their own folder" on storage.objects;
create policy "Users can delete images in their own folder" on storage.objects
  for delete to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid()::text));

-- Masks are written by service_role (which bypasses RLS); a user only reads the masks of their own results.
drop policy if exists "Users can read the masks of their own results" on storage.objects;
create policy "Users can read the masks of their own results" on storage.objects
  for select to authenticated
  using (bucket_id = 'masks' and (storage.foldername(name))[1] = (select auth.uid()::text));
