"""The bottom floor every process shares: Prometheus metrics and structured logging.

Imports only `schemas`; `db`, `broker`, `workers`, `api` and the CLI all import it, never the reverse.
"""
