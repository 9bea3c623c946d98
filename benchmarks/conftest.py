"""Set-up for ``pytest benchmarks`` (pytest-benchmark): collection, threads, data, the report.

* ``-n auto`` (the project's addopts) becomes ``-n 0``: benchmarks run in one process.
* Files named ``bench_*.py`` are collected here (the project's ``python_files`` is pytest's
  default ``test_*.py``), so ``pytest benchmarks`` runs them and the default ``pytest`` (whose
  ``testpaths`` is ``tests``) does not.
* PyTorch and ONNX Runtime use 2 intra-op threads (``ETDS_BENCH_THREADS`` changes it), so the
  numbers describe a 2-core budget whatever the machine has.
* Without ``--benchmark-json`` the JSON goes to ``.benchmarks/etds.json``; after the run the
  Markdown report and the PSNR–latency plot are written to ``--bench-report DIR`` (default
  ``.benchmarks/report``; ``--bench-report docs`` regenerates the committed ``docs/benchmarks.md``
  and ``docs/psnr_latency.svg``).
* Facts that are not timings (Set5 PSNR of each model and runtime, the machine with its int8
  dot-product flags, :mod:`benchmarks.machine`) are collected in
  :data:`FACTS` by the benchmarks and stored under ``"etds"`` in the JSON.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = PROJECT_ROOT / ".benchmarks" / "etds.json"
DEFAULT_REPORT = PROJECT_ROOT / ".benchmarks" / "report"
THREADS = int(os.environ.get("ETDS_BENCH_THREADS", "2"))

#: Non-timing results gathered during the run: ``{"psnr": {model_id: {runtime: dB}}, ...}``.
FACTS: dict[str, Any] = {"psnr": {}, "interleaved": {}, "notes": []}


def interleaved_min_ms(runners: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Minimum wall time (ms) of each runner over ``rounds`` round-robin passes (one warm-up
    pass first). Interleaving exposes every runner to the same background load, so ratios
    between them stay meaningful on a shared machine where back-to-back blocks do not."""
    for run in runners.values():
        run()
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - start) * 1000.0)
    return best


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-report",
        metavar="DIR",
        default=None,
        help="write benchmarks.md and psnr_latency.svg here after the run "
        "(default .benchmarks/report)",
    )


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    # The project's addopts has ``-n auto``; parallel workers would share the cores being
    # measured (and pytest-benchmark disables itself under xdist), so benchmarks run serially.
    return 0


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # A file named on the command line is already collected by pytest's python plugin.
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_configure(config: pytest.Config) -> None:
    # Runs before pytest-benchmark's own (trylast) configure; pytest-benchmark 5 takes the
    # JSON sink as a path (``--benchmark-json PATH``) and opens it itself.
    if getattr(config.option, "benchmark_json", None) is None:
        DEFAULT_JSON.parent.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = DEFAULT_JSON
    torch.set_num_threads(THREADS)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's description)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import onnxruntime

    from benchmarks.machine import read_cpu

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_info": read_cpu().to_json(),
        "logical_cpus": os.cpu_count(),
        "threads": THREADS,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "load_average_at_end": list(os.getloadavg()),
    }
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # not installed: the LiteRT rows are skipped
        info["ai_edge_litert"] = None
    return info


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list, output_json: dict[str, Any]
) -> None:
    output_json["etds"] = {**FACTS, "machine": machine()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest-benchmark writes the JSON in a hookwrapper before this runs.
    sink = session.config.getoption("benchmark_json", None)
    if sink is None:
        return
    path = Path(sink) if isinstance(sink, str | Path) else Path(getattr(sink, "name", ""))
    if not path.is_file() or path.stat().st_size == 0:
        return
    from benchmarks.report import write_report

    out = Path(session.config.getoption("--bench-report") or DEFAULT_REPORT)
    out.mkdir(parents=True, exist_ok=True)
    written = write_report(path, out)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"etds benchmark report: {', '.join(str(p) for p in written)}")


def shared_path() -> Path:
    """``ETDS_SHARED`` or ``../shared`` beside the project (may not exist)."""
    env = os.environ.get("ETDS_SHARED")
    return Path(env) if env else PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not path.is_dir():
        pytest.skip("../shared not found (set ETDS_SHARED)")
    return path


@pytest.fixture(scope="session")
def checkpoints_dir(shared_dir: Path) -> Path:
    return shared_dir / "official" / "checkpoints"


@pytest.fixture(scope="session")
def set5_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "Set5"
