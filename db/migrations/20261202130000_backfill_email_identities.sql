-- Why: users signed up before auth.identities was kept get their `email` identity row, with the very
-- `identity_id` GET /user has returned for them so far (a UUID v5 of 'email:<user id>' in segbase's identity
-- namespace), so ids clients stored do not change. Users that already have an email identity are left alone
-- (a hosted Supabase project's GoTrue wrote theirs).
insert into auth.identities (id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select
  encode(
    set_byte(set_byte(substring(h from 1 for 16), 6, (get_byte(h, 6) & 15) | 80), 8, (get_byte(h, 8) & 63) | 128),
    'hex')::uuid,
  u.id::text,
  u.id,
  jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', u.email_confirmed_at is not null,
                     'phone_verified', false),
  'email',
  u.last_sign_in_at,
  u.created_at,
  u.updated_at
from auth.users u
cross join lateral (
  select extensions.digest(decode(replace('5d6f1c1e-3f0a-4f0c-9a55-6b1d2c9e7a10', '-', ''), 'hex')
                           || convert_to('email:' || u.id::text, 'UTF8'), 'sha1') as h
) as name_hash
where u.email is not null and u.email <> '' and u.is_anonymous is false and u.deleted_at is null
  and not exists (select from auth.identities i where i.user_id = u.id and i.provider = 'email')
on conflict do nothing;
