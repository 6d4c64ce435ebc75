#!/usr/bin/env python3
"""tools/edge_report.py: runs legc_research.evidence.edge_report (see its docstring)."""

from legc_research.evidence.edge_report import main

raise SystemExit(main())
