#!/usr/bin/env python3
"""tools/bench_scoring.py: runs legc_research.evidence.bench_scoring (see its docstring)."""

from legc_research.evidence.bench_scoring import main

raise SystemExit(main())
