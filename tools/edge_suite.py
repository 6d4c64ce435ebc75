#!/usr/bin/env python3
"""tools/edge_suite.py: runs legc_research.evidence.edge_suite (see its docstring)."""

from legc_research.evidence.edge_suite import main

raise SystemExit(main())
