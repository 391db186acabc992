-- Why: a result names an object in segbase's own storage by its authenticated object URL,
-- `{API_EXTERNAL_URL}/storage/v1/object/authenticated/<bucket>/<path>` (the form storage-js builds), so the result
-- URL rule accepts exactly that form besides https URLs — whatever its scheme, since it is this deployment's own
-- address (http in development). `segbase migrate` writes the address as internal.config
-- `storage_object_url_prefix` (`//host[:port][/path]/storage/v1/object/authenticated/`). schemas/urls.py applies
-- the same rule before a webhook is accepted.
create or replace function internal.is_storage_object_url(url text) returns boolean
language sql
stable
set search_path = ''
as $$
  with prefix as (
    select c.value #>> '{}' as value from internal.config c where c.key = 'storage_object_url_prefix'
  ), parts as (
    select substr(url, strpos(url, '//'), length(p.value)) as head,
           substr(url, strpos(url, '//') + length(p.value)) as rest, p.value as prefix
      from prefix p
     where url ~* '^https?://'
  )
  select coalesce((
    select url is not null
       and length(url) <= coalesce(internal.config_int('result_url_max_length'), 2048)
       and lower(parts.head) = lower(parts.prefix)
       -- <bucket>/<path>: a bucket id, then non-empty segments, no '.'/'..' segment, no query or fragment
       and parts.rest ~ '^[A-Za-z0-9_!.*''()&$@=;:+,-]{1,100}/[^?#]+$'
       and parts.rest !~ '(^|/)\.\.?(/|$)'
       and parts.rest !~ '//'
       and parts.rest !~ '/$'
       and url !~ '[\u0001-\u0020\u007f-\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff\\]'
      from parts), false)
$$;
comment on function internal.is_storage_object_url(text) is
  'True for exactly this deployment''s authenticated storage object URL (internal.config storage_object_url_prefix), any scheme.';
revoke execute on function internal.is_storage_object_url(text) from public, anon, authenticated;
grant execute on function internal.is_storage_object_url(text) to service_role;

-- The https rule keeps its body under a name of its own; the rule every writer is held to is now either form.
do $$
begin
  if to_regprocedure('internal.is_allowed_web_result_url(text)') is null then
    alter function internal.is_allowed_result_url(text) rename to is_allowed_web_result_url;
  end if;
end
$$;
comment on function internal.is_allowed_web_result_url(text) is
  'The https part of the result URL rule (docs/SECURITY.md): https (http when result_url_allow_http), bounded length, no whitespace/control/backslash, a host, no credentials.';

create or replace function internal.is_allowed_result_url(url text) returns boolean
language sql
stable
set search_path = ''
as $$
  select internal.is_allowed_web_result_url(url) or internal.is_storage_object_url(url)
$$;
comment on function internal.is_allowed_result_url(text) is
  'The rule for URLs stored on a result: an https URL (internal.is_allowed_web_result_url) or this deployment''s authenticated storage object URL (internal.is_storage_object_url). Extend it here (create or replace).';
revoke execute on function internal.is_allowed_result_url(text) from public, anon, authenticated;
grant execute on function internal.is_allowed_result_url(text) to service_role;
