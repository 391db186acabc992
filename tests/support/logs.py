"""Reading a live process's log for what a request left there (a traceback is a bug when the client was wrong)."""
from __future__ import annotations

import json

from tests.support.processes import SegbaseProcess


class LogWindow:
    """The part of a process's log written since the window was opened."""

    def __init__(self, process: SegbaseProcess) -> None:
        self.process = process
        self.start = len(process.log_text())

    def text(self) -> str:
        return self.process.log_text()[self.start:]

    def tracebacks(self) -> list[str]:
        """Every logged traceback (JSON lines carry it under `exc`; anything else printed says `Traceback`)."""
        found = []
        for line in self.text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback (most recent call last)" in line:
                    found.append(line)
                continue
            if isinstance(entry, dict) and entry.get("exc"):
                found.append(f"{entry.get('msg')}\n{entry['exc']}")
        return found
