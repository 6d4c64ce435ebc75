#!/usr/bin/env python3
"""tools/neurons_report.py: runs legc_research.evidence.neurons_report (see its docstring)."""

from legc_research.evidence.neurons_report import main

raise SystemExit(main())
