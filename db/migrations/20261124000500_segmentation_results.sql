-- Why: the seed's segmentation_results with its status enum, RLS, and realtime publication.
do $$
begin
  create type public.segmentation_status as enum ('pending', 'processing', 'done', 'error');
exception when duplicate_object then null;
end
$$;

create table if not exists public.segmentation_results (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references public.users_profile (id) on delete cascade,
  project_id uuid references public.projects (id) on delete set null,
  source_image_url text not null,
  mask_image_url text,
  text_prompt text,
  status public.segmentation_status not null default 'pending',
  labels jsonb not null default '[]'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.segmentation_results is 'One segmentation job: its input, status and output.';
-- The list every client makes: a user's latest results.
create index if not exists segmentation_results_user_id_created_at_idx
  on public.segmentation_results (user_id, created_at desc);
create index if not exists segmentation_results_project_id_idx on public.segmentation_results (project_id);

drop trigger if exists segmentation_results_updated_at on public.segmentation_results;
create trigger segmentation_results_updated_at before update on public.segmentation_results
  for each row execute function public.update_updated_at();

alter table public.segmentation_results enable row level security;

drop policy if exists "Users can view their own results" on public.segmentation_results;
create policy "Users can view their own results" on public.segmentation_results
  for select to authenticated using ((select auth.uid()) = user_id);
drop policy if exists "Users can create their own results" on public.segmentation_results;
create policy "Users can create their own results" on public.segmentation_results
  for insert to authenticated with check ((select auth.uid()) = user_id);
drop policy if exists "Users can update their own results" on public.segmentation_results;
create policy "Users can update their own results" on public.segmentation_results
  for update to authenticated using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
drop policy if exists "Users can delete their own results" on public.segmentation_results;
create policy "Users can delete their own results" on public.segmentation_results
  for delete to authenticated using ((select auth.uid()) = user_id);

do $$
begin
  if not exists (select from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'segmentation_results') then
    alter publication supabase_realtime add table public.segmentation_results;
  end if;
end
$$;
