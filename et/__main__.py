"""``python -m et`` is kept as an alias of ``python -m etds``, the command line.

The command line lives above the rule library (in :mod:`etds`); this entry point only forwards to
it, and nothing in :mod:`et` imports it.
"""

import importlib

raise SystemExit(importlib.import_module("etds.cli").main())
