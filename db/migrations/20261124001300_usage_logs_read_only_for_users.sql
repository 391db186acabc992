-- Why: usage_logs is the charge record; users may read theirs but never insert, update or delete a row
-- (the seed's INSERT policy is for the service role only). Column privileges make that a privilege error (42501)
-- rather than a silent RLS filter, and take TRUNCATE, which RLS does not filter, from anon and authenticated.
revoke insert, update, delete, truncate, references, trigger on public.usage_logs from anon, authenticated;
grant select on public.usage_logs to anon, authenticated;
grant all on public.usage_logs to service_role;
