"""A pytest plugin that registers the Hypothesis profile ``mutation`` for mutation runs.

Mutation testing runs the selected tests once per mutant, so each property gets few examples
(``max_examples=12``) with a fixed derivation of examples (``derandomize=True``: a mutant is
killed or not by the same inputs every time, and reruns agree) and no example database (forked
workers must not share or pollute one). Loaded with ``-p hypothesis_mutation_profile`` before the
suite's ``tests/conftest.py``, which then selects it through ``ETDS_HYPOTHESIS_PROFILE=mutation``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mutation",
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
