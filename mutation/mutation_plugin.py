"""A pytest plugin for mutation runs (``-p mutation_plugin``; ``mutation/`` is on ``PYTHONPATH``).

The Hypothesis profile ``mutation``: mutation testing runs the selected tests once per mutant,
so each property gets few examples (``max_examples=12``) with a fixed derivation of examples
(``derandomize=True``: a mutant is killed or not by the same inputs every time, and reruns
agree) and no example database (forked workers must not share or pollute one). The suite's
``tests/conftest.py`` selects it through ``ETDS_HYPOTHESIS_PROFILE=mutation``.

With ``ETDS_MUTATION_STATE`` (a folder: the run's scratch copy) the plugin follows mutmut's
phases, which it tells apart by ``MUTANT_UNDER_TEST``:

* ``stats`` — mutmut runs the whole selection once, unmutated, recording which tests reach
  which function (and each test's time, in ``mutants/mutmut-stats.json``). A test that fails
  there (one still being written by others; in a re-check, a new test of behaviour added after
  the snapshot) is listed in ``failing-tests.txt`` and reported as skipped, so that mutmut,
  which stops at the first failure, goes on. A test that starts a process (the ``etds`` command
  line) is skipped there and listed in ``subprocess-tests.txt``: mutmut attributes only what
  runs in its own process, and each start costs seconds per mutant.
* every later phase leaves the listed tests out and runs the rest fastest first (times from
  ``mutmut-stats.json``): mutmut runs a mutant's covering tests with ``-x``, so a mutant dies in
  the time of the quickest test that kills it.
* ``""`` — mutmut's clean run of the whole selection, right after the stats run has just run
  every test unmutated: only the fastest test runs. It runs in mutmut's own process, which
  every mutant's process is then forked from, so it first warms :func:`torch.export.export`
  up (its first call in a process costs seconds: lazy imports and caches); without that, each
  compiler mutant paid it again and mutmut's wall-clock limit (5 × the covering tests' time
  + 1 s) counted the slow start as a timeout.
* a mutant — with ``ETDS_MUTATION_BUDGET`` (seconds), only its fastest covering tests whose
  recorded times fit in the budget run (at least one); a mutant cut short is listed in
  ``budget-cut.txt`` (if it survives, its verdict rests on those tests; it counts as survived).
  With ``ETDS_MUTATION_SLOW_LIMIT`` (seconds), tests slower than that never run.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

_STATE = os.environ.get("ETDS_MUTATION_STATE")
_current_test: list[str] = []  # the node id of the test running in this process, if any


def _phase() -> str:
    return os.environ.get("MUTANT_UNDER_TEST", "")


def _append(name: str, line: str) -> None:
    if _STATE:
        with open(Path(_STATE) / name, "a") as listed:
            listed.write(line + "\n")


def _listed(name: str) -> set[str]:
    path = Path(_STATE or "") / name
    return set(path.read_text().split()) if _STATE and path.is_file() else set()


def _skip_process_start(original: Any) -> Any:
    def init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if _current_test and _phase() == "stats":
            _append("subprocess-tests.txt", _current_test[-1])
            pytest.skip("mutation run: this test starts a process")
        original(self, *args, **kwargs)

    return init


if _STATE:
    subprocess.Popen.__init__ = _skip_process_start(subprocess.Popen.__init__)  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _current_test.append(item.nodeid)
    try:
        return (yield)
    finally:
        _current_test.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if _STATE and _phase() == "stats" and report.failed:
        _append("failing-tests.txt", item.nodeid)
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, "fails on the unmutated code")
    return report


def _seconds_by_test() -> dict[str, float]:
    stats = Path(_STATE or "") / "mutants" / "mutmut-stats.json"
    if not (_STATE and stats.is_file()):
        return {}
    return json.loads(stats.read_text()).get("duration_by_test", {})


def _warm_up_export() -> None:
    """One small :func:`torch.export.export` (static and dynamic shapes, decomposed), so that
    the processes forked from this one start with torch.export's lazy state loaded."""
    import torch
    from torch.export import Dim, export

    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.ReLU()).double()
    example = (torch.rand(2, 2, 5, 5, dtype=torch.float64),)
    export(model, example, strict=False).module()
    shapes = ({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},)
    export(model, example, dynamic_shapes=shapes, strict=False).run_decompositions({})


def pytest_sessionstart(session: pytest.Session) -> None:
    if _STATE and _phase() == "":
        _warm_up_export()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = _phase()
    if not _STATE or phase in ("stats", "list_all_tests", "mutant_generation"):
        return
    seconds = _seconds_by_test()
    limit = float(os.environ.get("ETDS_MUTATION_SLOW_LIMIT") or "inf")
    unwanted = _listed("failing-tests.txt") | _listed("subprocess-tests.txt")
    keep, drop = [], []
    for item in items:
        left_out = item.nodeid in unwanted or seconds.get(item.nodeid, 0.0) > limit
        (drop if left_out else keep).append(item)
    # a test the stats never timed (added since) runs last: its cost is unknown
    keep.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))
    if phase == "":
        drop, keep = drop + keep[1:], keep[:1]
    elif "__mutmut_" in phase:
        fit = _within_budget(keep, seconds)
        if fit < len(keep):
            _append("budget-cut.txt", phase)
            drop, keep = drop + keep[fit:], keep[:fit]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _within_budget(items: list[pytest.Item], seconds: dict[str, float]) -> int:
    """How many of ``items`` (fastest first) fit in ``ETDS_MUTATION_BUDGET`` seconds (≥ 1)."""
    budget = float(os.environ.get("ETDS_MUTATION_BUDGET") or "inf")
    spent = 0.0
    for count, item in enumerate(items):
        spent += seconds.get(item.nodeid, 0.0)
        if count and spent > budget:
            return count
    return len(items)
