"""The ``legc`` command line: thin click commands over the public API, one module per group.

Importing this package registers every command on :func:`main`; the research package
(``legc_research.cli``) adds ``demo`` and ``reproduce`` to the same group.
"""

from __future__ import annotations

from keras_legc.cli import channels, diagnose, export, neurons, score  # noqa: F401  (registers)
from keras_legc.cli._group import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
