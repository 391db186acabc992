-- Why: (1) GET /auth/v1/reauthenticate mails a code that a later PUT /user spends (GoTrue's reauthentication nonce);
-- it is a one-time email token like the others, of a new kind.
alter table internal.auth_email_tokens drop constraint if exists auth_email_tokens_kind_check;
alter table internal.auth_email_tokens add constraint auth_email_tokens_kind_check
  check (kind in ('signup', 'invite', 'magiclink', 'recovery', 'email_change', 'reauthentication'));

-- A mailed link asked for with PKCE (`code_challenge` on /otp, /recover, /signup, /resend, PUT /user) ends in a
-- `?code=` redirect instead of a session in the fragment: the challenge waits here with the token.
alter table internal.auth_email_tokens add column if not exists code_challenge text;
alter table internal.auth_email_tokens add column if not exists code_challenge_method text;
