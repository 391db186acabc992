-- Why: the seed's projects, owned by a user, with RLS so a user manages only their own.
create table if not exists public.projects (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references public.users_profile (id) on delete cascade,
  name text not null,
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.projects is 'A user''s grouping of segmentation results.';
create index if not exists projects_user_id_idx on public.projects (user_id);

drop trigger if exists projects_updated_at on public.projects;
create trigger projects_updated_at before update on public.projects
  for each row execute function public.update_updated_at();

alter table public.projects enable row level security;

drop policy if exists "Users can view their own projects" on public.projects;
create policy "Users can view their own projects" on public.projects
  for select to authenticated using ((select auth.uid()) = user_id);
drop policy if exists "Users can create their own projects" on public.projects;
create policy "Users can create their own projects" on public.projects
  for insert to authenticated with check ((select auth.uid()) = user_id);
drop policy if exists "Users can update their own projects" on public.projects;
create policy "Users can update their own projects" on public.projects
  for update to authenticated using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
drop policy if exists "Users can delete their own projects" on public.projects;
create policy "Users can delete their own projects" on public.projects
  for delete to authenticated using ((select auth.uid()) = user_id);
