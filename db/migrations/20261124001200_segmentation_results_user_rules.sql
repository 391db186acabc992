-- Why: what a user may do with their results. A user submits a job (always `pending`: status is not insertable, so
-- the default applies), files it in one of their own projects, and deletes it once finished. The output columns
-- (status, mask_image_url, labels, metadata) belong to the pipeline (service_role); deleting a pending or
-- processing result would dodge its charge, so the delete policy only matches done/error results.
revoke insert, update, delete, truncate, references, trigger on public.segmentation_results from anon, authenticated;
grant select on public.segmentation_results to anon, authenticated;
grant insert (id, user_id, project_id, source_image_url, text_prompt) on public.segmentation_results to authenticated;
grant update (project_id) on public.segmentation_results to authenticated;
grant delete on public.segmentation_results to authenticated;
grant all on public.segmentation_results to service_role;

-- The project must be the user's own: the FK alone is checked as the table owner and would accept any project.
drop policy if exists "Users can create their own results" on public.segmentation_results;
create policy "Users can create their own results" on public.segmentation_results
  for insert to authenticated
  with check (
    (select auth.uid()) = user_id
    and status = 'pending'
    and (project_id is null or exists (
      select 1 from public.projects p
      where p.id = segmentation_results.project_id and p.user_id = (select auth.uid())))
  );

drop policy if exists "Users can update their own results" on public.segmentation_results;
create policy "Users can update their own results" on public.segmentation_results
  for update to authenticated
  using ((select auth.uid()) = user_id)
  with check (
    (select auth.uid()) = user_id
    and (project_id is null or exists (
      select 1 from public.projects p
      where p.id = segmentation_results.project_id and p.user_id = (select auth.uid())))
  );

drop policy if exists "Users can delete their own results" on public.segmentation_results;
drop policy if exists "Users can delete their own finished results" on public.segmentation_results;
create policy "Users can delete their own finished results" on public.segmentation_results
  for delete to authenticated
  using ((select auth.uid()) = user_id and status in ('done', 'error'));

comment on column public.segmentation_results.status is
  'pending → processing → done|error; set by service_role only (users cannot insert or update it).';
