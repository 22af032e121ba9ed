"""Progress lines on stderr for long-running commands (stdout is reserved for JSON)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``<task>: <done>/<total> <unit> (<pct>%)`` to stderr, at most every ``every`` s.

    Args:
        task: Short name shown at the start of each line.
        total: Expected total, or ``None`` when unknown.
        unit: What is being counted.
        every: Minimum seconds between two lines (the final line always prints).
    """

    def __init__(
        self, task: str, total: int | None = None, *, unit: str = "rows", every: float = 1.0
    ):
        self.task, self.total, self.unit, self.every = task, total, unit, every
        self.done = 0
        self._start = time.monotonic()
        self._last = self._start

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._print()

    def finish(self) -> None:
        self._print(final=True)

    def _print(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self._start
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total:,}" if self.total else ""
        end = f" done in {elapsed:.1f}s" if final else f" {elapsed:.0f}s"
        print(f"{self.task}: {self.done:,}{of} {self.unit}{pct}{end}", file=sys.stderr, flush=True)


def log(message: str) -> None:
    """One human-readable status line on stderr."""
    print(message, file=sys.stderr, flush=True)
