"""The one provenance helper of the evidence scripts: where the checkout is, the command that
regenerates a document, and the date, machine and versions it was made with (from
:mod:`keras_legc._env`)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_legc._env import machine, package_version, python_version, today, versions

#: The checkout the scripts run from (docs/ and edge/ are beside the packages).
REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO",
    "tool_command",
    "machine",
    "package_version",
    "python_version",
    "today",
    "versions",
]


def tool_command(name: str, argv: Sequence[str] | None = None, *, quote: bool = True) -> str:
    """The command line that regenerates a document: ``python tools/<name>.py ARGS``.

    Args:
        name: the script's name (``"neurons_report"``).
        argv: its arguments (default: this process's ``sys.argv[1:]``).
        quote: shell-quote each part.

    Example:
        >>> tool_command("neurons_report", ["--quick"])
        'python tools/neurons_report.py --quick'
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parts = [f"tools/{name}.py", *args]
    return "python " + " ".join(shlex.quote(p) if quote else p for p in parts)
