"""The one provenance helper of the evidence scripts: where the checkout is, the command that
regenerates a document, and the date, machine and versions it was made with (from
:mod:`keras_legc._env`)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_legc._env import machine, package_version, python_version, today, versions
from legc_research.datasets import SHARED_DATA

#: The checkout the scripts run from (docs/ and edge/ are beside the packages).
REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO",
    "portable_path",
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
    args = [_portable_arg(a) for a in (sys.argv[1:] if argv is None else argv)]
    parts = [f"tools/{name}.py", *args]
    return "python " + " ".join(_quote(p) if quote else p for p in parts)


#: How documents name the data folder: the variable every script reads it from.
DATA_VARIABLE = "$LEGC_DATA_DIR"


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as a document may name it: inside the data folder (``$LEGC_DATA_DIR``, else the
    shared one beside the checkout) as ``$LEGC_DATA_DIR/...``, inside the checkout relative to it,
    any other path unchanged. Documents never name a folder of the machine that wrote them.

    Example:
        >>> portable_path(REPO / "runs" / "bench.json")
        'runs/bench.json'
    """
    # as written, then with links resolved: a virtualenv's python links out of the checkout
    for candidate in (Path(os.path.normpath(Path(path).absolute())), Path(path).resolve()):
        data = [Path(d).resolve() for d in (os.environ.get("LEGC_DATA_DIR"), SHARED_DATA) if d]
        for root, name in [*((d, DATA_VARIABLE) for d in data), (REPO.resolve(), "")]:
            if candidate == root or root in candidate.parents:
                rel = candidate.relative_to(root).as_posix()
                return "/".join(p for p in (name, "" if rel == "." else rel) if p) or "."
    return str(path)


def _portable_arg(arg: str) -> str:
    """A command-line argument with its absolute path (``/x`` or ``--opt=/x``) made portable."""
    option, eq, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    return option + eq + portable_path(value) if os.path.isabs(value) else arg


def _quote(part: str) -> str:
    # "$LEGC_DATA_DIR/..." stays expandable by the shell that runs the command
    if part.startswith(DATA_VARIABLE) or f"={DATA_VARIABLE}" in part:
        return f'"{part}"'
    return shlex.quote(part)
