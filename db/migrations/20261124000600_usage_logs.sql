-- Why: the seed's usage_logs: what each user was charged for; readable by its owner, written by the service role.
do $$
begin
  create type public.usage_action as enum ('segmentation', 'upload');
exception when duplicate_object then null;
end
$$;

create table if not exists public.usage_logs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users_profile (id) on delete cascade,
  action public.usage_action not null,
  credits_used integer not null default 0 check (credits_used >= 0),
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table public.usage_logs is 'Credits used per action; one segmentation row per completed result.';
create index if not exists usage_logs_user_id_created_at_idx on public.usage_logs (user_id, created_at desc);

alter table public.usage_logs enable row level security;

drop policy if exists "Users can view their own usage" on public.usage_logs;
create policy "Users can view their own usage" on public.usage_logs
  for select to authenticated using ((select auth.uid()) = user_id);
drop policy if exists "Service role can record usage" on public.usage_logs;
create policy "Service role can record usage" on public.usage_logs
  for insert to service_role with check (true);
