from legc_edge.bench import main

raise SystemExit(main())
