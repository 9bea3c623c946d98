"""INT8 layouts are laid out and scored on tiles of the calibration frames, not on the frames.

On full 360×640 frames the layout candidates of ETDS-M alone took over 520 s of CPU; the
decision of ``etds export --int8`` is made on :func:`scoring_tiles` and says so in its summary.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from etds_command import run_etds

from reference_models import ETDSForInference, save_checkpoint
from reference_models.deploy.int8.calibration import (
    SCORING_TILE,
    SCORING_TILES_PER_IMAGE,
    calibration_images,
    scoring_tiles,
)
from tests.export.scaled_weights import randomize_scaled


def test_scoring_tiles_are_crops_of_each_frame() -> None:
    height, width = 2 * SCORING_TILE + 5, 3 * SCORING_TILE + 1
    frames = [
        torch.arange(3 * height * width, dtype=torch.float64).reshape(1, 3, height, width) + k
        for k in range(2)
    ]
    tiles = scoring_tiles(frames)
    assert len(tiles) == 2 * SCORING_TILES_PER_IMAGE
    for index, tile in enumerate(tiles):
        assert tile.shape == (1, 3, SCORING_TILE, SCORING_TILE)
        frame = frames[index // SCORING_TILES_PER_IMAGE]
        origin = int(tile[0, 0, 0, 0] - frame[0, 0, 0, 0])
        top, left = divmod(origin, width)
        assert torch.equal(tile, frame[..., top : top + SCORING_TILE, left : left + SCORING_TILE])


def test_frames_no_larger_than_a_tile_are_scored_as_they_are() -> None:
    frames = [torch.rand(1, 3, SCORING_TILE, SCORING_TILE + 40) for _ in range(3)]
    assert scoring_tiles(frames) == frames


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="needs ONNX Runtime (extra deploy)"
)
@pytest.mark.parametrize("side", [24, 2 * SCORING_TILE + 8])
def test_export_decides_on_tiles_and_exports_the_frame_size(
    tmp_path: Path, shared_dir: Path, side: int
) -> None:
    checkpoint = tmp_path / "m.pth"
    scale = 2
    model = randomize_scaled(ETDSForInference(3, 3, scale, 1, 8, 3, align=4), seed=0, gain=0.5)
    save_checkpoint(model, checkpoint)
    out = tmp_path / "m_int8.onnx"
    size = ["--height", str(side), "--width", str(side)]
    calibration = ["--calibration", shared_dir / "data" / "Set5"]
    done = run_etds("export", checkpoint, out, "--int8", *calibration, *size, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    frames = len(calibration_images(shared_dir / "data" / "Set5", scale, side, side))
    tiles = frames * SCORING_TILES_PER_IMAGE if side > SCORING_TILE else frames
    tile = min(side, SCORING_TILE)
    assert summary["scored_on"] == {"tiles": tiles, "size": [tile, tile]}
    assert summary["size"] == [side, side] and out.is_file()
    assert summary["fidelity_db"] >= 20
