"""Docs, code and comments speak of the project alone: every reference is one a reader of the repository can
follow (a public source, a file of the repository), never a private note, a tracker number or a file outside it.

Applied migrations are the exception: they are checksummed and never edited, so their comments stay as written.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_SUFFIXES = {".py", ".md", ".sql", ".mjs", ".js", ".html", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh"}
CHECKED_NAMES = {"Makefile", "Dockerfile", "run"}
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", "data"}
SKIPPED = {"db/migrations", "tests/test_wording.py"}

FORBIDDEN = [
    (re.compile(r"\bthe seed\b", re.IGNORECASE), "'the seed': say 'the original specification' (docs/ARCHITECTURE.md)"),
    (re.compile(r"\bissues? #?\d+", re.IGNORECASE), "an issue number: say what the rule is and why"),
    (re.compile(r"PROTOCOL"), "a private protocol sheet: cite the public client or server source"),
    (re.compile(r"shared/"), "a folder outside the repository: cite a public source"),
]


def checked_files():
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if not path.is_file() or SKIPPED_DIRS & set(relative.parts):
            continue
        if any(str(relative).startswith(prefix) for prefix in SKIPPED):
            continue
        if path.suffix in CHECKED_SUFFIXES or path.name in CHECKED_NAMES:
            yield path, relative


def test_docs_code_and_comments_cite_only_what_a_reader_can_follow() -> None:
    found = []
    for path, relative in checked_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for pattern, advice in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{relative}:{number}: {advice}\n    {line.strip()[:120]}")
    assert not found, "\n".join(found)
