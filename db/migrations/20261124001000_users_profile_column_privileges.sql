-- Why: RLS cannot compare OLD with NEW, so column privileges stop a user from raising their own credits or tier,
-- and from deleting their profile (re-creating it would reset credits); only display_name/avatar_url are theirs.
-- Supabase's default privileges gave anon and authenticated ALL on the table; narrow them (service_role keeps ALL).
-- Revoking a table privilege also revokes the column privileges of that kind, so this file can run again.
revoke insert, update, delete, truncate, references, trigger on public.users_profile from anon, authenticated;
grant select on public.users_profile to anon, authenticated;
grant update (display_name, avatar_url) on public.users_profile to authenticated;
grant all on public.users_profile to service_role;

-- The seed's INSERT and DELETE policies are deliberately not created: the sign-up trigger creates the profile and
-- deleting the auth user removes it (cascade); no user command does either.

comment on column public.users_profile.credits is
  'Credit balance; changed only by service_role (charging), never by the user (no UPDATE privilege).';
comment on column public.users_profile.tier is 'Plan tier; changed only by service_role.';
