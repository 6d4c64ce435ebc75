"""A minimal progress bar on stderr: items done / total, rate and ETA; silent when not a TTY."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress of ``total`` items of work.

    Args:
        total: number of items.
        label: what is being done.
        enabled: True/False to force; None shows it only when stderr is a terminal.
    """

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._t0 = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done = min(self.done + int(n), self.total)
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            elapsed = now - self._t0
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            bar = "#" * int(30 * self.done / self.total)
            sys.stderr.write(
                f"\r{self.label} [{bar:<30}] {self.done}/{self.total} "
                f"{elapsed:5.1f}s elapsed, ETA {eta:5.1f}s"
            )
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
