"""The test suite mirrors the packages (`tests/<area>/`); helpers any test or benchmark imports live in
`tests/support/`, fixtures in each `conftest.py`."""
