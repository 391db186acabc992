"""Celery workers, beat jobs and the outbox relay; they act as `service_role` through db/ functions."""
