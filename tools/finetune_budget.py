#!/usr/bin/env python3
"""tools/finetune_budget.py: runs legc_research.evidence.finetune_budget (see its docstring)."""

from legc_research.evidence.finetune_budget import main

raise SystemExit(main())
