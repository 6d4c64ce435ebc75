#!/usr/bin/env python3
"""tools/sparse_conv_speed.py: runs legc_research.evidence.sparse_conv_speed (see its docstring)."""

from legc_research.evidence.sparse_conv_speed import main

raise SystemExit(main())
