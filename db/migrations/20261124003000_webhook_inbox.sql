-- Why: a webhook is acknowledged only once it is stored here, in PostgreSQL, so no event ever exists only in Redis;
-- Celery carries the inbox id, and every row ends in a final state that says what happened to it and why.
create table if not exists internal.webhook_inbox (
  id uuid primary key default gen_random_uuid(),
  idempotency_key text not null constraint webhook_inbox_idempotency_key_key unique,
  webhook_id text,
  result_id uuid not null,
  event_status text not null constraint webhook_inbox_event_status check (event_status in ('processing', 'done', 'error')),
  payload jsonb not null,
  state text not null default 'received'
    constraint webhook_inbox_state check (state in ('received', 'applied', 'duplicate', 'ignored', 'rejected')),
  reason text,
  attempts integer not null default 0 constraint webhook_inbox_attempts_non_negative check (attempts >= 0),
  received_at timestamptz not null default now(),
  enqueued_at timestamptz,
  last_attempt_at timestamptz,
  finished_at timestamptz,
  constraint webhook_inbox_final_has_finished_at check ((state = 'received') = (finished_at is null))
);
comment on table internal.webhook_inbox is
  'process-webhook events, stored before they are queued: received → applied|duplicate|ignored|rejected (docs/PIPELINE.md).';
comment on column internal.webhook_inbox.idempotency_key is
  'webhook-id:<header> when the sender gave a webhook-id, else sha256:<hash of the canonical JSON body>; a repeat is answered 200 duplicate.';
comment on column internal.webhook_inbox.result_id is 'The body''s task_id: the segmentation_results.id (no FK: unknown ids are rejected, results may be deleted).';
comment on column internal.webhook_inbox.payload is 'The validated body (mask_url, labels, metadata, error).';
comment on column internal.webhook_inbox.state is
  'received (not applied yet), applied (changed the result), duplicate (result already had this status), ignored (stale), rejected (unknown result, illegal transition, poison).';
comment on column internal.webhook_inbox.reason is 'Why the event ended as duplicate, ignored or rejected.';
comment on column internal.webhook_inbox.attempts is
  'Deliveries that started applying the event (committed before applying); past INBOX_MAX_ATTEMPTS the event is rejected as poison.';
comment on column internal.webhook_inbox.enqueued_at is 'Last time the sweeper re-queued the event (null: only the API queued it).';

-- The sweeper's read: events still received, oldest first.
create index if not exists webhook_inbox_received_idx on internal.webhook_inbox (received_at) where state = 'received';
-- Retention cleanup of final rows, and operators looking up a result's events.
create index if not exists webhook_inbox_finished_at_idx on internal.webhook_inbox (finished_at) where state <> 'received';
create index if not exists webhook_inbox_result_id_idx on internal.webhook_inbox (result_id);

alter table internal.webhook_inbox enable row level security;
revoke all on internal.webhook_inbox from public, anon, authenticated;
grant select, insert, update, delete on internal.webhook_inbox to service_role;
