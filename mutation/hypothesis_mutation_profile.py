"""A pytest plugin for mutation runs: the Hypothesis profile ``mutation`` and a deselect list.

Mutation testing runs the selected tests once per mutant, so each property gets few examples
(``max_examples=12``) with a fixed derivation of examples (``derandomize=True``: a mutant is
killed or not by the same inputs every time, and reruns agree) and no example database (forked
workers must not share or pollute one). Loaded with ``-p hypothesis_mutation_profile`` before the
suite's ``tests/conftest.py``, which then selects it through ``ETDS_HYPOTHESIS_PROFILE=mutation``.

``ETDS_MUTATION_DESELECT`` (optional) names a file of test node ids, one a line, to leave out:
the tests that fail on the unmutated snapshot (tests still being written by others). Reading
them here, not from mutmut's ``pytest_add_cli_args``, keeps mutmut's configuration fingerprint
fixed, so re-checking survivors later does not make mutmut discard the earlier verdicts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "mutation",
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = os.environ.get("ETDS_MUTATION_DESELECT")
    if not listed or not Path(listed).is_file():
        return
    # node ids as pytest prints them; mutmut may run from another folder, so match by suffix
    unwanted = set(Path(listed).read_text().split())
    keep, drop = [], []
    for item in items:
        (drop if any(item.nodeid.endswith(node) for node in unwanted) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
