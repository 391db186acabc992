-- Why: users manage their own projects (create, rename, delete) but never forge timestamps; TRUNCATE (which RLS
-- does not filter) and the other default privileges Supabase grants are taken from anon and authenticated.
-- Ownership is RLS's job (WITH CHECK user_id = auth.uid()), so user_id and id stay writable: supabase-js/py send
-- them on insert and PostgREST's upsert (merge-duplicates) updates every column of the payload, the key included.
revoke insert, update, delete, truncate, references, trigger on public.projects from anon, authenticated;
grant select on public.projects to anon, authenticated;
grant insert (id, user_id, name, description) on public.projects to authenticated;
grant update (id, user_id, name, description) on public.projects to authenticated;
grant delete on public.projects to authenticated;
grant all on public.projects to service_role;
