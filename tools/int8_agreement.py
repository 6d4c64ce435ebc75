#!/usr/bin/env python3
"""tools/int8_agreement.py: runs legc_research.evidence.int8_agreement (see its docstring)."""

from legc_research.evidence.int8_agreement import main

raise SystemExit(main())
