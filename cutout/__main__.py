from cutout.cli import main

raise SystemExit(main())
