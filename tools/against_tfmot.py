"""Side by side against TF-MOT (docs/against-tfmot.md); see legc_research.evidence.against_tfmot."""

from legc_research.evidence.against_tfmot import main

raise SystemExit(main())
