"""Benchmarks (`make bench`), each reporting a ratio against a reference measured in the same run. A new
benchmark is `bench/<name>.py` with a `run(...)` that `bench/run.py` calls; it imports only `tests.support` of the
tests."""
