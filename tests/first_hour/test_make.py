"""The Makefile a new user meets: `make help` lists every target with what it does, `make run` says where the
`segbase` command is, and `make bench` writes its report outside tracked files unless asked to update the docs."""
from __future__ import annotations

import re
import subprocess

from tests.support.processes import ROOT


def make(*args: str) -> str:
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def phony_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.search(r"^\.PHONY:(.*)$", text, re.MULTILINE).group(1).split())


def test_make_help_lists_every_target_with_a_description():
    listed = {line.split()[1]: " ".join(line.split()[2:]) for line in make("-s", "help").splitlines()
              if line.startswith("  make ")}
    assert {"run", "test", "bench", "bench-docs", "compose.env", "browser", "compose-tool", "help"} <= set(listed)
    assert all(listed.values()), listed
    assert phony_targets() <= set(listed)


def test_make_run_says_where_the_segbase_command_is():
    assert "the segbase command is .venv/bin/segbase" in make("-n", "run")


def test_make_bench_writes_outside_tracked_files_unless_asked():
    bench = make("-n", "bench")
    assert "--output bench/results/BENCHMARKS.md" in bench and "docs/BENCHMARKS.md" not in bench
    ignored = subprocess.run(["git", "check-ignore", "-q", "bench/results/BENCHMARKS.md"], cwd=ROOT, timeout=30)
    assert ignored.returncode == 0, "bench/results/ must be git-ignored"
    assert "--output docs/BENCHMARKS.md" in make("-n", "bench-docs")
