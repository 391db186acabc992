-- Why: GET /auth/v1/reauthenticate mails a code that a later PUT /user spends (GoTrue's reauthentication nonce);
-- it is a one-time email token like the others, of a new kind.
alter table internal.auth_email_tokens drop constraint if exists auth_email_tokens_kind_check;
alter table internal.auth_email_tokens add constraint auth_email_tokens_kind_check
  check (kind in ('signup', 'invite', 'magiclink', 'recovery', 'email_change', 'reauthentication'));
