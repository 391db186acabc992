"""Celery workers, beat jobs and the outbox relay; they act as `service_role` through db/ functions. Add a task in
`workers/<subject>.py` (listed in `workers.main.TASK_MODULES`) with its name and send helper in `broker/tasks.py`."""
