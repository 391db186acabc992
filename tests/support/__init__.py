"""Helpers shared by the tests and the benchmarks: processes, factories, databases, clients. Fixtures stay in the
conftest.py files; everything a test or a benchmark imports by name lives here."""
