"""The /auth/v1 views, one module per group of GoTrue endpoints. Add a view to the module of its group (or a new
module imported in api/auth/__init__.py); keep it thin: parse with api/auth/bodies.py, call one operation of
api/auth/service.py (or its siblings), render with api/auth/responses.py."""
