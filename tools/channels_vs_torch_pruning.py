#!/usr/bin/env python3
"""tools/channels_vs_torch_pruning.py: runs legc_research.evidence.channels_vs_torch_pruning (see its docstring)."""

from legc_research.evidence.channels_vs_torch_pruning import main

raise SystemExit(main())
