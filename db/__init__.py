"""PostgreSQL: migrations, the migration runner, the engine and the unit of work that sets the caller's identity."""
