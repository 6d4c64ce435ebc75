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

    Example:
        >>> bar = Progress(len(jobs), "scoring")
        >>> for job in jobs:
        ...     bar.write(run(job))  # a line above the bar
        ...     bar.update(1)
        >>> bar.close()  # ends the bar's line if the work stopped early
    """

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._open = False  # the bar is drawn and its line not ended

    def update(self, n: int) -> None:
        """Count ``n`` more items done; redraw (at most every 0.2 s, and at the end)."""
        self.done = min(self.done + int(n), self.total)
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            self._draw(now)
            if self.done == self.total:
                self._end_line()

    def write(self, line: str) -> None:
        """Print ``line`` on stderr (always), above the bar when it is shown."""
        if self._open:
            sys.stderr.write("\r\x1b[2K")  # clear the bar's line, then redraw it below
        print(line, file=sys.stderr, flush=True)
        if self._open:
            self._draw(time.perf_counter())

    def close(self) -> None:
        """End the bar's line (when the work stopped before ``total``)."""
        if self._open:
            self._end_line()

    def _draw(self, now: float) -> None:
        elapsed = now - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        bar = "#" * int(30 * self.done / self.total)
        sys.stderr.write(
            f"\r{self.label} [{bar:<30}] {self.done}/{self.total} "
            f"{elapsed:5.1f}s elapsed, ETA {eta:5.1f}s"
        )
        sys.stderr.flush()
        self._open = True

    def _end_line(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
        self._open = False
