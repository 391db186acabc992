-- pgbench reference for the webhook pipeline (bench/pipeline.py): per event, exactly what a worker's
-- apply_webhook_event task does in SQL, over the same login role (authenticator) and with the server's
-- synchronous_commit, i.e. the same durability as the worker's commits.
--   pgbench -n -M extended -f bench/event_tx.sql -D attempt=1 -c <worker concurrency> -t <events per client>
-- Each execution takes the next prepared inbox event (bench.event_queue, numbered 1..N; the lookup runs outside
-- the measured transactions' locks, like the Celery message that carries the id). With attempt=1 it first
-- commits internal.begin_webhook_attempt as the worker does; then ONE transaction as service_role calls
-- internal.apply_webhook_event — the inbox update, the result update with its triggers (status machine, charge:
-- usage_logs row + credit decrement, realtime outbox row) — the very function the worker calls.
select event_id as ev from bench.event_queue where n = (select nextval('bench.event_seq')) \gset
\if :attempt
begin;
select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true);
select state, attempts from internal.begin_webhook_attempt(:ev, 5);
commit;
\endif
begin;
select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true);
select state, reason from internal.apply_webhook_event(:ev);
commit;
