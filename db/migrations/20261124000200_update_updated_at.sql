-- Why: the seed's shared trigger function keeping `updated_at` current on every table that has the column.
create or replace function public.update_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at = now();
  return new;
end
$$;
comment on function public.update_updated_at() is 'Sets updated_at = now() on UPDATE; shared by every table with updated_at.';
revoke execute on function public.update_updated_at() from public, anon, authenticated;
