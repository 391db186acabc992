-- Why: a console sign-in is an auth.sessions row (ended by sign-out, by a ban, by "sign out everywhere", and by its
-- not_after), and every console request re-reads it together with the operator's role and ban state in one query,
-- so a revoked role, a ban or an ended session takes effect on the very next request.
create or replace function internal.console_session_operator(session_id uuid)
returns table (user_id uuid, email text, operator boolean)
language sql
stable
security definer
set search_path = ''
as $$
  select u.id, u.email, internal.is_operator(u.id)
    from auth.sessions s
    join auth.users u on u.id = s.user_id
   where s.id = console_session_operator.session_id
     and (s.not_after is null or s.not_after > now())
$$;
comment on function internal.console_session_operator(uuid) is
  'The user behind a live session and whether they are an operator now (no row: the session ended or expired).';
revoke execute on function internal.console_session_operator(uuid) from public, anon, authenticated;
grant execute on function internal.console_session_operator(uuid) to service_role;
