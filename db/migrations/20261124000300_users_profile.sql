-- Why: the seed's users_profile (one per auth user) with its tier enum, RLS and the sign-up trigger.
do $$
begin
  create type public.user_tier as enum ('free', 'pro', 'enterprise');
exception when duplicate_object then null;
end
$$;

create table if not exists public.users_profile (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text,
  avatar_url text,
  tier public.user_tier not null default 'free',
  credits integer not null default 0 constraint users_profile_credits_non_negative check (credits >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.users_profile is 'One row per auth user: display data, tier and credit balance.';

drop trigger if exists users_profile_updated_at on public.users_profile;
create trigger users_profile_updated_at before update on public.users_profile
  for each row execute function public.update_updated_at();

alter table public.users_profile enable row level security;

drop policy if exists "Users can view their own profile" on public.users_profile;
create policy "Users can view their own profile" on public.users_profile
  for select to authenticated using ((select auth.uid()) = id);
drop policy if exists "Users can update their own profile" on public.users_profile;
create policy "Users can update their own profile" on public.users_profile
  for update to authenticated using ((select auth.uid()) = id) with check ((select auth.uid()) = id);

create or replace function public.handle_new_user() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.users_profile (id, display_name, tier, credits)
  values (
    new.id,
    nullif(coalesce(new.raw_user_meta_data ->> 'display_name', new.raw_user_meta_data ->> 'full_name',
                    new.raw_user_meta_data ->> 'name'), ''),
    'free',
    coalesce(internal.config_int('starting_credits_free'), 0)
  )
  on conflict (id) do nothing;
  return new;
end
$$;
comment on function public.handle_new_user() is 'Creates the users_profile (tier free, starting credits) for a new auth user.';
revoke execute on function public.handle_new_user() from public, anon, authenticated;

drop trigger if exists on_auth_user_created on auth.users;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function public.handle_new_user();
