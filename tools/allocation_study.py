#!/usr/bin/env python3
"""tools/allocation_study.py: runs legc_research.evidence.allocation_study (see its docstring)."""

from legc_research.evidence.allocation_study import main

raise SystemExit(main())
