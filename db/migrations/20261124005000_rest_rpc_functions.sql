-- Why: RPC endpoints the app can call through /rest/v1/rpc (supabase `rpc()`): the caller's credit summary for
-- the account screen and a result count for badges, in one round trip each. Security invoker, so RLS decides
-- and a caller only ever counts their own rows; stable, so GET /rest/v1/rpc/<name> works too.
create or replace function public.my_credit_summary()
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select jsonb_build_object(
    'user_id', p.id,
    'tier', p.tier,
    'credits', p.credits,
    'results_total', (select count(*) from public.segmentation_results r where r.user_id = p.id),
    'results_in_progress', (select count(*) from public.segmentation_results r
                            where r.user_id = p.id and r.status in ('pending', 'processing')),
    'credits_used', (select coalesce(sum(u.credits_used), 0) from public.usage_logs u where u.user_id = p.id)
  )
  from public.users_profile p
  where p.id = (select auth.uid())
$$;
comment on function public.my_credit_summary() is
  'The caller''s tier, credit balance, result counts and credits used (null for a caller without a profile).';
revoke execute on function public.my_credit_summary() from public, anon;
grant execute on function public.my_credit_summary() to authenticated, service_role;

create or replace function public.count_my_results(status public.segmentation_status default null)
returns bigint
language sql
stable
security invoker
set search_path = ''
as $$
  select count(*) from public.segmentation_results r
  where r.user_id = (select auth.uid())
    and (count_my_results.status is null or r.status = count_my_results.status)
$$;
comment on function public.count_my_results(public.segmentation_status) is
  'How many results the caller has, optionally only those in one status.';
revoke execute on function public.count_my_results(public.segmentation_status) from public, anon;
grant execute on function public.count_my_results(public.segmentation_status) to authenticated, service_role;
