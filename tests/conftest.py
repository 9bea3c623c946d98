"""Suite-wide settings: Hypothesis profiles, the ``--run-slow`` option, and ``../shared``.

Profiles: ``default`` (100 examples per property, no deadline) and ``thorough`` (1000 examples);
pick one with ``--hypothesis-profile=thorough`` or ``ETDS_HYPOTHESIS_PROFILE``.

Files from ``../shared`` (the authors' checkpoints, benchmark images) are found through
``ETDS_SHARED`` or, failing that, ``../shared`` beside the project root. Tests that need them
use the ``shared_dir`` fixture: on a user's machine without the folder they skip with the reason;
under CI (``CI=true``) a missing folder is an error, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("ETDS_HYPOTHESIS_PROFILE", "default"))

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_path() -> Path | None:
    """Where ``../shared`` is, or None."""
    env = os.environ.get("ETDS_SHARED")
    candidate = Path(env) if env else PROJECT_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def pytest_configure(config: pytest.Config) -> None:
    # Tests use small tensors, where intra-op threads cost more than they give, and pytest-xdist
    # already runs one worker per core.
    torch.set_num_threads(int(os.environ.get("ETDS_TEST_THREADS", "1")))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide ../shared (or ETDS_SHARED); it was not found")
        pytest.skip("../shared not found (set ETDS_SHARED to run the checkpoint/data tests)")
    return path


@pytest.fixture(scope="session")
def checkpoints_dir(shared_dir: Path) -> Path:
    return shared_dir / "official" / "checkpoints"
