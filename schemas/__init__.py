"""Pydantic models shared by the API and the workers (bodies, events) and the one `Settings`. A new body or event
goes in `schemas/<subject>.py`; this package imports nothing else of segbase."""
