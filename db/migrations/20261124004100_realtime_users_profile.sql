-- Why: a client watches its own credit balance live, so users_profile joins the supabase_realtime publication
-- and gets the same capture trigger as segmentation_results, routed by the profile's id (its owner).
do $$
begin
  if not exists (select from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'users_profile') then
    alter publication supabase_realtime add table public.users_profile;
  end if;
end
$$;

select internal.attach_realtime_capture('public.users_profile', 'id');
