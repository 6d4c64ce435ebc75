#!/usr/bin/env python3
"""tools/scale_out.py: runs legc_research.evidence.scale_out (see its docstring)."""

from legc_research.evidence.scale_out import main

if __name__ == "__main__":  # Dask's worker processes re-import this file: they must not run it
    raise SystemExit(main())
