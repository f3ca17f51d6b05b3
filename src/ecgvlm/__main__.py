from ecgvlm.cli import main

raise SystemExit(main())
