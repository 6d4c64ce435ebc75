#!/usr/bin/env python3
"""tools/diagnose_paper.py: runs legc_research.evidence.diagnose_paper (see its docstring)."""

from legc_research.evidence.diagnose_paper import main

raise SystemExit(main())
