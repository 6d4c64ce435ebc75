"""The ``legc`` command line: thin click commands over the public API, one module per group.

Importing this package registers the library's commands on :func:`main`; other packages add theirs
through the ``keras_legc.cli_commands`` entry-point group (``_plugins.py``: the research package
registers ``demo`` and ``reproduce``), imported only when one is run or listed.
"""

from __future__ import annotations

from keras_legc.cli import channels, diagnose, export, neurons, score  # noqa: F401  (registers)
from keras_legc.cli._group import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
