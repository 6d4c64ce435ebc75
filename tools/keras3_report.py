#!/usr/bin/env python3
"""tools/keras3_report.py: runs legc_research.evidence.keras3_report (see its docstring)."""

from legc_research.evidence.keras3_report import main

raise SystemExit(main())
