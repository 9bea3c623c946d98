"""``etds export`` keeps third-party log noise (absl, oneDNN, torchao, TensorFlow Lite) off
stderr unless ``--verbose``, and shows it when the conversion fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from etds_command import PROJECT_ROOT, run_etds

from reference_models import ETDSForInference, save_checkpoint
from tests.export.scaled_weights import randomize_scaled

NOISE = ("absl", "oneDNN", "torchao", "XNNPACK delegate", "flatbuffer_export", "_pytree")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "small.pth"
    model = randomize_scaled(ETDSForInference(3, 3, 2, 1, 8, 3, align=4), seed=0, gain=0.5)
    save_checkpoint(model, path)
    return path


def test_tflite_export_is_quiet_without_verbose_and_not_with_it(
    checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("litert_torch", reason="litert-torch not installed")
    quiet = run_etds("export", checkpoint, tmp_path / "q.tflite", "--height", "16", "--width", "16")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("wrote ") and quiet.stderr == ""
    loud = run_etds(
        "export", checkpoint, tmp_path / "v.tflite", "--height", "16", "--width", "16", "--verbose"
    )
    assert loud.returncode == 0, loud.stderr
    # the noise exists in this environment, so the quiet run's empty stderr means something
    assert any(word in loud.stderr for word in NOISE), loud.stderr


def _block(error: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import logging, os, sys
        from etds.cli import CommandError
        from etds.cli._quiet import third_party_logs
        with third_party_logs(verbose=False):
            os.write(2, b"C++ LOG LINE\\n")
            logging.getLogger("torchao").warning("TORCHAO LINE")
            print("PYTHON STDERR LINE", file=sys.stderr)
            {error}
        print("AFTER", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), file=sys.stderr)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_success_drops_the_captured_log_and_python_stderr_stays_seen() -> None:
    done = _block("pass")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "PYTHON STDERR LINE\nAFTER None\n"  # the variable unset again


def test_a_failure_replays_the_captured_log() -> None:
    done = _block("raise CommandError('runtime disagrees', 1)")
    assert done.returncode == 1
    assert "C++ LOG LINE" in done.stderr and "runtime disagrees" in done.stderr
    assert "TORCHAO LINE" not in done.stderr  # raised to ERROR, not captured


def test_a_user_error_does_not_replay_the_log() -> None:
    done = _block("raise CommandError('bad size')")
    assert done.returncode == 1  # the uncaught exception's traceback
    assert "C++ LOG LINE" not in done.stderr and "bad size" in done.stderr
