-- Why: the console lists inbox events newest first within a time window and counts them per minute for the last
-- hour; rejected events (the ones an operator acts on, and that `segbase status` counts) are rare among the applied
-- ones, so they get a small partial index of their own instead of a scan through every applied event.
create index if not exists webhook_inbox_received_at_idx on internal.webhook_inbox (received_at);
create index if not exists webhook_inbox_rejected_received_at_idx
  on internal.webhook_inbox (received_at) where state = 'rejected';
