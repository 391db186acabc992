-- Why: a client rejoining with `since` gets the changes of its tables it missed (postgres_changes recovery,
-- docs/REALTIME.md); this index finds them by table and time instead of scanning the retained outbox.
create index if not exists realtime_outbox_table_captured_idx
  on internal.realtime_outbox (schema_name, table_name, captured_at);
