"""PostgreSQL: bootstrap and migrations, the migration runner, engines, the unit of work that sets the caller's
identity, and the SQL-facing functions. New SQL goes in `db/<subject>.py` as functions that take the caller's unit
of work (`uow`) and never commit."""
