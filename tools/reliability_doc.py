#!/usr/bin/env python3
"""tools/reliability_doc.py: runs legc_research.evidence.reliability_doc (see its docstring)."""

from legc_research.evidence.reliability_doc import main

raise SystemExit(main())
