#!/usr/bin/env python3
"""tools/mutation.py: runs legc_research.evidence.mutation (see its docstring)."""

from legc_research.evidence.mutation import main

raise SystemExit(main())
