from segbase.cli import main

raise SystemExit(main())
