"""``python -m et`` runs the ``etds`` command line."""

from et.cli import main

raise SystemExit(main())
