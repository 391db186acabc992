-- Why: maintenance jobs (cleanup-old-results, by beat or on demand) are recorded in PostgreSQL so
-- `GET /functions/v1/cleanup-old-results?job_id=` can answer for any job, after a restart or a Redis flush,
-- and operators can read the history of what each run deleted (docs/OPERATIONS.md).
create table if not exists internal.maintenance_jobs (
  id uuid primary key default gen_random_uuid(),
  kind text not null constraint maintenance_jobs_kind check (kind in ('cleanup_old_results')),
  trigger text not null constraint maintenance_jobs_trigger check (trigger in ('beat', 'request')),
  state text not null default 'queued'
    constraint maintenance_jobs_state check (state in ('queued', 'running', 'done', 'skipped', 'failed')),
  counts jsonb not null default '{}'::jsonb,
  detail text,
  requested_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz
);
comment on table internal.maintenance_jobs is
  'One row per maintenance job run: state queued → running → done|skipped|failed, with its counts (rows deleted per table).';
comment on column internal.maintenance_jobs.detail is 'Why a job was skipped (another run held the lock) or failed.';

create index if not exists maintenance_jobs_requested_at_idx on internal.maintenance_jobs (requested_at);

alter table internal.maintenance_jobs enable row level security;
revoke all on internal.maintenance_jobs from public, anon, authenticated;
grant select, insert, update, delete on internal.maintenance_jobs to service_role;
