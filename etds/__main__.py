"""``python -m etds`` runs the ``etds`` command line."""

from etds.cli import main

raise SystemExit(main())
