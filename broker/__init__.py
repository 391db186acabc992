"""The task-sending contract between the API and the workers: the Celery app factory, queue and task names, and
the Redis channel names. The API produces tasks through this package and never imports `workers`.

Imports only `schemas` and `observability`.
"""
