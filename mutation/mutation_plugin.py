"""A pytest plugin for mutation runs (``-p mutation_plugin``; ``mutation/`` is on ``PYTHONPATH``).

* The Hypothesis profile ``mutation``: mutation testing runs the selected tests once per mutant,
  so each property gets few examples (``max_examples=12``) with a fixed derivation of examples
  (``derandomize=True``: a mutant is killed or not by the same inputs every time, and reruns
  agree) and no example database (forked workers must not share or pollute one). The suite's
  ``tests/conftest.py`` selects it through ``ETDS_HYPOTHESIS_PROFILE=mutation``.
* ``ETDS_MUTATION_DESELECT`` names a file of test node ids, one a line, to leave out: tests that
  fail on the unmutated snapshot (still being written by others) and tests left out by design
  (below). Reading them here, not from mutmut's ``pytest_add_cli_args``, keeps mutmut's
  configuration fingerprint fixed, so re-checking survivors later keeps the earlier verdicts.
* ``ETDS_MUTATION_RECORD`` names a folder: the run (``run.sh``'s clean run of the selection,
  in parallel under xdist) writes there ``durations.json`` (node id → seconds of setup, call
  and teardown) and ``subprocess-tests.txt`` (the tests that start a process: the ``etds``
  command line). mutmut maps tests to the functions they reach *in its own process*, so what a
  child process runs is never attributed, while the test costs seconds per mutant; in this run
  such a test is stopped at its first process start (it is left out anyway).
* ``ETDS_MUTATION_ORDER`` names such a ``durations.json``: the selected tests then run fastest
  first. mutmut runs each mutant's covering tests with ``-x``, so a mutant that any quick test
  kills is killed in that test's time instead of after every slower test before it.
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

_RECORD = os.environ.get("ETDS_MUTATION_RECORD")
_durations: dict[str, float] = {}
_current_test: list[str] = []  # the node id of the test running in this process, if any


class ProcessStartedInRecording(RuntimeError):
    """Ends a test that starts a process in the recording run: it is left out anyway."""


def _record_process_start(original: Any) -> Any:
    def init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if _current_test and _RECORD:
            with open(Path(_RECORD) / "subprocess-tests.txt", "a") as listed:
                listed.write(_current_test[-1] + "\n")  # one short append: atomic across workers
            # such a test is left out of the mutation run, so it need not finish (the command
            # line takes seconds a start)
            raise ProcessStartedInRecording(f"{_current_test[-1]} starts a process")
        original(self, *args, **kwargs)

    return init


if _RECORD:
    subprocess.Popen.__init__ = _record_process_start(subprocess.Popen.__init__)  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _current_test.append(item.nodeid)
    try:
        return (yield)
    finally:
        _current_test.pop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # under xdist the controller receives every worker's reports, so it alone sees them all
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _RECORD and not hasattr(session.config, "workerinput"):
        target = Path(_RECORD) / "durations.json"
        target.write_text(json.dumps(_durations, indent=0, sort_keys=True) + "\n")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = os.environ.get("ETDS_MUTATION_DESELECT")
    if listed and Path(listed).is_file():
        # node ids relative to the project root, as both the clean run and mutmut (which runs
        # pytest inside mutants/ with --rootdir=.) print them
        unwanted = set(Path(listed).read_text().split())
        keep, drop = [], []
        for item in items:
            (drop if item.nodeid.removeprefix("mutants/") in unwanted else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    order = os.environ.get("ETDS_MUTATION_ORDER")
    if order and Path(order).is_file():
        seconds = json.loads(Path(order).read_text())
        # a test the recording never saw (added since) runs last: its cost is unknown
        items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))
