#!/usr/bin/env python3
"""tools/width_latency.py: runs legc_research.evidence.width_latency (see its docstring)."""

from legc_research.evidence.width_latency import main

raise SystemExit(main())
