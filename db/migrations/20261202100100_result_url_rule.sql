-- Why: a result's URLs (source_image_url, mask_image_url) are loaded by browsers and by the inference backend, so
-- every writer — a user through the data API, the worker, plain SQL — is held to one rule in the database: https
-- (http only when RESULT_URL_ALLOW_HTTP is on), at most RESULT_URL_MAX_LENGTH characters, no whitespace, control or
-- invisible formatting characters, no backslash, a host and no credentials before it. schemas/urls.py applies the
-- same rule before a webhook is accepted, plus a WHATWG parse and the mask host allow-list.

create or replace function internal.is_allowed_result_url(url text) returns boolean
language sql
stable
set search_path = ''
as $$
  select url is not null
     and length(url) <= coalesce(internal.config_int('result_url_max_length'), 2048)
     -- scheme://authority: the authority (up to / ? #) is not empty, does not start with a port, has no @ or \
     and url ~* '^https?://[^/?#@:\\][^/?#@\\]*([/?#]|$)'
     and (url ~* '^https://'
          or coalesce((select (c.value #>> '{}')::boolean from internal.config c
                        where c.key = 'result_url_allow_http'), false))
     -- whitespace, controls and invisible formatting characters (Unicode Zs/Zl/Zp/Cc/Cf), and the backslash
     and url !~ '[\u0001-\u0020\u007f-\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff\\]'
$$;
comment on function internal.is_allowed_result_url(text) is
  'The rule for URLs stored on a result (docs/SECURITY.md): https (http when result_url_allow_http), bounded length, no whitespace/control/backslash, a host, no credentials. Extend it here (create or replace) to accept more forms.';
revoke execute on function internal.is_allowed_result_url(text) from public, anon, authenticated;
grant execute on function internal.is_allowed_result_url(text) to service_role;

create or replace function internal.enforce_result_urls() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Checked when written: rows stored before the rule keep their URLs until one is changed.
  if (tg_op = 'INSERT' or new.source_image_url is distinct from old.source_image_url)
     and not internal.is_allowed_result_url(new.source_image_url) then
    raise exception using
      errcode = 'check_violation',
      message = 'source_image_url must be an https URL with a host, without whitespace, control characters, '
                'backslashes or credentials, of bounded length',
      detail = format('source_image_url: %s', left(new.source_image_url, 200)),
      constraint = 'segmentation_results_source_image_url_allowed',
      table = 'segmentation_results',
      schema = 'public',
      column = 'source_image_url';
  end if;
  if new.mask_image_url is not null
     and (tg_op = 'INSERT' or new.mask_image_url is distinct from old.mask_image_url)
     and not internal.is_allowed_result_url(new.mask_image_url) then
    raise exception using
      errcode = 'check_violation',
      message = 'mask_image_url must be an https URL with a host, without whitespace, control characters, '
                'backslashes or credentials, of bounded length',
      detail = format('mask_image_url: %s', left(new.mask_image_url, 200)),
      constraint = 'segmentation_results_mask_image_url_allowed',
      table = 'segmentation_results',
      schema = 'public',
      column = 'mask_image_url';
  end if;
  return new;
end
$$;
comment on function internal.enforce_result_urls() is
  'BEFORE INSERT/UPDATE OF source_image_url, mask_image_url on segmentation_results: internal.is_allowed_result_url() or 23514.';
revoke execute on function internal.enforce_result_urls() from public, anon, authenticated;

drop trigger if exists segmentation_results_allowed_urls on public.segmentation_results;
create trigger segmentation_results_allowed_urls
  before insert or update of source_image_url, mask_image_url on public.segmentation_results
  for each row execute function internal.enforce_result_urls();
