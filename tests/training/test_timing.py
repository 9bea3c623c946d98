"""Run timing: the steady-state window, what is taken out of it, and the projection's arithmetic.

A scripted clock makes every duration known in advance, so the expected figures below are
worked out by hand from the script, not by the code under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from etds.cli import main as etds_main
from reference_models.training import train
from reference_models.training.timing import (
    RunTimer,
    TimeBreakdown,
    format_duration,
    warmup_for,
)


class ScriptedClock:
    """A clock that only moves when the test advances it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CPU = torch.device("cpu")


def _timed_run(warmup: int, iterations: int) -> TimeBreakdown:
    """A scripted run. Each iteration: 0.5 s blocked on data, 1.5 s of compute; a 7 s
    validation after every 2nd iteration, a 3 s checkpoint after every 4th."""
    clock = ScriptedClock()
    timer = RunTimer(CPU, warmup_iterations=warmup, clock=clock)
    for i in range(1, iterations + 1):
        with timer.data_wait():
            clock.advance(0.5)
        clock.advance(1.5)
        timer.step_finished()
        if i % 2 == 0:
            with timer.phase("validation"):
                clock.advance(7.0)
        if i % 4 == 0:
            with timer.phase("checkpoint"):
                clock.advance(3.0)
    return timer.finish()


def test_warmup_is_excluded_and_phases_are_taken_out() -> None:
    timing = _timed_run(warmup=2, iterations=8)
    # Window opens after iteration 2 (before its validation): iterations 3..8 = 6 steps of 2 s.
    assert timing.timed_iterations == 6
    assert timing.step_seconds == pytest.approx(12.0)
    assert timing.seconds_per_iteration == pytest.approx(2.0)
    assert timing.data_wait_seconds == pytest.approx(3.0)  # 6 × 0.5 s, warm-up not counted
    assert timing.data_wait_fraction == pytest.approx(0.25)
    # Phases are counted over the whole run, warm-up included.
    assert (timing.validations, timing.validation_seconds) == (4, pytest.approx(28.0))
    assert (timing.checkpoints, timing.checkpoint_seconds) == (2, pytest.approx(6.0))


def test_projection_adds_periodic_work_at_its_measured_mean() -> None:
    timing = TimeBreakdown(
        iterations=120,
        warmup_iterations=20,
        step_seconds=50.0,  # 0.5 s per iteration
        data_wait_seconds=5.0,
        validations=2,
        validation_seconds=8.0,  # 4 s each
        checkpoints=4,
        checkpoint_seconds=2.0,  # 0.5 s each
    )
    projection = timing.project(1_600_000, val_freq=5000, save_freq=5000)
    assert projection.steps == pytest.approx(800_000.0)
    assert projection.validation == pytest.approx(320 * 4.0)
    assert projection.checkpoint == pytest.approx(320 * 0.5)
    assert projection.total == pytest.approx(800_000.0 + 1280.0 + 160.0)
    assert projection.complete
    assert "1600000 iterations: 9.3 d" in projection.describe()
    assert timing.project(1000, val_freq=0, save_freq=0).total == pytest.approx(500.0)


def test_unmeasured_periodic_work_is_flagged_not_guessed() -> None:
    timing = TimeBreakdown(10, 0, 10.0, 0.0, 0, 0.0, 0, 0.0)
    projection = timing.project(10_000, val_freq=5000, save_freq=0)
    assert projection.validation is None and projection.checkpoint == 0.0
    assert not projection.complete
    assert projection.total == pytest.approx(10_000.0)
    assert "at least" in projection.describe() and "validation unmeasured" in projection.describe()


def test_a_run_inside_its_warmup_times_nothing() -> None:
    timing = _timed_run(warmup=5, iterations=3)
    assert timing.timed_iterations == 0
    with pytest.raises(ValueError, match="no steady-state iteration"):
        _ = timing.seconds_per_iteration


def test_refusals() -> None:
    with pytest.raises(ValueError, match="warmup_iterations"):
        RunTimer(CPU, warmup_iterations=-1)
    timer = RunTimer(CPU, warmup_iterations=0)
    with pytest.raises(ValueError, match="phase 'evaluation'"), timer.phase("evaluation"):
        pass
    with pytest.raises(ValueError, match="iterations"):
        warmup_for(-1)


@pytest.mark.parametrize(
    ("iterations", "expected"), [(0, 0), (4, 0), (10, 2), (100, 20), (1_600_000, 20)]
)
def test_warmup_is_at_most_a_fifth_of_the_run(iterations: int, expected: int) -> None:
    assert warmup_for(iterations) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.3828, "383 ms"),
        (41.25, "41.2 s"),
        (750, "12.5 min"),
        (26_280, "7.3 h"),
        (613_440, "7.1 d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.shared
def test_a_training_run_reports_its_timing(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    config = tiny_config
    config["train"]["total_iter"] = 12
    config["val"] = {"val_freq": 6}
    config["logger"] = {"print_freq": 4, "save_checkpoint_freq": 4}
    result = train(config, tmp_path / "run", progress=False)
    timing = result.timing
    assert timing is not None
    assert (timing.iterations, timing.warmup_iterations) == (12, 2)
    assert timing.validations == 2  # at 6 and 12
    assert timing.checkpoints == 3  # at 4, 8 and 12
    assert 0 < timing.data_wait_seconds < timing.step_seconds < result.seconds
    log = (tmp_path / "run" / "train.log").read_text()
    assert "steady-state iterations" in log
    assert "at this rate, 12 iterations:" in log


@pytest.mark.shared
def test_cli_projects_the_config_as_written(
    tiny_config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config
    config["train"]["total_iter"] = 1_600_000
    config["val"] = {"val_freq": 5000}
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump(config))
    argv = ["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]
    assert etds_main([*argv, "--set", "train.total_iter=10", "--set", "val.val_freq=5"]) == 0
    err = capsys.readouterr().err
    assert "trained 10 iterations" in err
    assert "recipe.yml as written needs 1600000 iterations:" in err
    assert "of validation" in err  # measured at 5 and 10, projected for 320 passes
