"""Reconciliation SQL: results stuck in pending/processing without progress become `error` (timeout).

The status change goes through the pipeline's transition trigger like any other, which releases the credit
reservation (nothing is charged for an `error`). One bounded batch per call, in the caller's transaction.
"""
from __future__ import annotations

from sqlalchemy import text

from db.uow import UnitOfWork

# With dispatch on, RESULT_TIMEOUT_SECONDS counts from the job's first delivery or lease (or the result's last
# progress, whichever is later); a job not yet delivered nor leased is bounded by DISPATCH_QUEUE_TIMEOUT_SECONDS
# instead (db/dispatch.py). `r.updated_at < …` alone is what the index serves; the rest filters the few in flight.
TIME_OUT_STUCK_RESULTS = text("""
with stuck as (
  select r.id from public.segmentation_results r
    left join internal.dispatch_jobs j on j.result_id = r.id
   where r.status in ('pending', 'processing')
     and r.updated_at < now() - make_interval(secs => :timeout)
     and (j.first_dispatched_at is null or j.first_dispatched_at < now() - make_interval(secs => :timeout))
     and not (:dispatch_on and j.first_dispatched_at is null and j.state in ('queued', 'sending'))
   order by r.updated_at
   limit :batch
   for update of r skip locked
)
update public.segmentation_results r
   set status = 'error',
       metadata = r.metadata || jsonb_build_object('error', 'timeout', 'timed_out_at', now())
  from stuck
 where r.id = stuck.id
returning r.id
""")


def time_out_stuck_batch(uow: UnitOfWork, *, timeout_seconds: int, batch_size: int,
                         dispatch_on: bool = False) -> list[str]:
    """Move up to `batch_size` results without progress for `timeout_seconds` to `error` (metadata.error =
    "timeout"); returns their ids. With `dispatch_on` (DISPATCH_MODE push or pull) a dispatched job's clock starts
    at its first delivery or lease, and a job still waiting in the dispatch queue is left to the queue timeout."""
    return [str(i) for i in uow.execute(TIME_OUT_STUCK_RESULTS,
                                        {"timeout": timeout_seconds, "batch": batch_size,
                                         "dispatch_on": dispatch_on}).scalars()]
