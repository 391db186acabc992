-- Why: a user who signs in with Google or Apple gets the provider's name and picture in their profile: a new
-- user's profile takes `avatar_url` from the sign-up metadata too, and the first sign-in with a provider fills
-- `display_name`/`avatar_url` where the profile has none (never overwriting what the user chose).
create or replace function public.handle_new_user() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.users_profile (id, display_name, avatar_url, tier, credits)
  values (
    new.id,
    nullif(coalesce(new.raw_user_meta_data ->> 'display_name', new.raw_user_meta_data ->> 'full_name',
                    new.raw_user_meta_data ->> 'name'), ''),
    nullif(new.raw_user_meta_data ->> 'avatar_url', ''),
    'free',
    coalesce(internal.config_int('starting_credits_free'), 0)
  )
  on conflict (id) do nothing;
  return new;
end
$$;
revoke execute on function public.handle_new_user() from public, anon, authenticated;

create or replace function public.handle_new_identity() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.provider <> 'email' then
    update public.users_profile
       set display_name = coalesce(display_name, nullif(coalesce(new.identity_data ->> 'full_name',
                                                                 new.identity_data ->> 'name'), '')),
           avatar_url = coalesce(avatar_url, nullif(coalesce(new.identity_data ->> 'avatar_url',
                                                             new.identity_data ->> 'picture'), ''))
     where id = new.user_id and (display_name is null or avatar_url is null);
  end if;
  return new;
end
$$;
comment on function public.handle_new_identity() is
  'Fills an empty users_profile display_name/avatar_url from a new provider identity (Google, Apple).';
revoke execute on function public.handle_new_identity() from public, anon, authenticated;

drop trigger if exists on_auth_identity_created on auth.identities;
create trigger on_auth_identity_created after insert on auth.identities
  for each row execute function public.handle_new_identity();
