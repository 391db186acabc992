"""Reconciliation SQL: results stuck in pending/processing without progress become `error` (timeout).

The status change goes through the pipeline's transition trigger like any other, which releases the credit
reservation (nothing is charged for an `error`). One bounded batch per call, in the caller's transaction.
"""
from __future__ import annotations

from sqlalchemy import text

from db.uow import UnitOfWork

TIME_OUT_STUCK_RESULTS = text("""
with stuck as (
  select id from public.segmentation_results
   where status in ('pending', 'processing')
     and updated_at < now() - make_interval(secs => :timeout)
   order by updated_at
   limit :batch
   for update skip locked
)
update public.segmentation_results r
   set status = 'error',
       metadata = r.metadata || jsonb_build_object('error', 'timeout', 'timed_out_at', now())
  from stuck
 where r.id = stuck.id
returning r.id
""")


def time_out_stuck_batch(uow: UnitOfWork, *, timeout_seconds: int, batch_size: int) -> list[str]:
    """Move up to `batch_size` results without progress for `timeout_seconds` to `error` (metadata.error =
    "timeout"); returns their ids."""
    return [str(i) for i in uow.execute(TIME_OUT_STUCK_RESULTS,
                                        {"timeout": timeout_seconds, "batch": batch_size}).scalars()]
