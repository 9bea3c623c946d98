"""Safe loading and architecture detection of checkpoints: the authors' files, wrappers, our own
metadata, the Plain/ETDSOnlyET convention, and hostile or broken files."""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import pytest
import torch

from et.testing import first_output
from reference_models import (
    ETDS,
    FSRCNN,
    CheckpointError,
    ETDSOnlyET,
    Plain,
    from_state_dict,
    load_checkpoint,
    parameter_count,
    save_checkpoint,
)

pytestmark = pytest.mark.shared


def official_rows(shared_dir: Path) -> dict[str, dict[str, str]]:
    with open(shared_dir / "official" / "results.csv", newline="") as handle:
        return {row["checkpoint"]: row for row in csv.DictReader(handle)}


def test_every_official_checkpoint_loads_as_its_network(
    shared_dir: Path, checkpoints_dir: Path
) -> None:
    """Each file: strict load, the architecture the CSV names, the CSV's parameter count, and
    a finite forward pass of the right size."""
    rows = official_rows(shared_dir)
    files = sorted(checkpoints_dir.glob("*.pth"))
    assert files, "no checkpoints found"
    for path in files:
        row = rows[path.stem]  # every shipped checkpoint has a results row
        model = load_checkpoint(path)
        assert not model.training
        assert model.arch == row["network"], path.name
        assert parameter_count(model) == int(row["parameters"]), path.name
        x = torch.rand(1, model.colors, 9, 7)
        with torch.no_grad():
            out = model(x)
        y = first_output(out)
        scale = model.upscale_factor
        assert y.shape == (1, model.colors, 9 * scale, 7 * scale)
        assert torch.isfinite(y).all()
        assert f"x{scale}" in path.stem


def test_authors_et_pairs_agree(checkpoints_dir: Path) -> None:
    """The authors' ET conversions compute what the originals compute (to ~2e-4/255), which
    checks our forward semantics (shortcut, slicing, clip) of both forms at once."""
    x = torch.rand(2, 3, 16, 16)
    for original, converted in (
        ("ABPN_M4C28_x3.pth", "ABPN_ET_M4C28_x3.pth"),
        ("ECBSR_M4C16_x2.pth", "ECBSR_ET_M4C16_x2.pth"),
    ):
        a, b = (
            load_checkpoint(checkpoints_dir / original),
            load_checkpoint(checkpoints_dir / converted),
        )
        with torch.no_grad():
            diff = (a(x).clamp(0, 1) - b(x).clamp(0, 1)).abs().max().item() * 255
        assert diff < 1e-2, (original, diff)


@pytest.mark.parametrize("wrapper", ["params", "params_ema", "state_dict", "module", "nested"])
def test_wrappers_are_unwrapped(checkpoints_dir: Path, tmp_path: Path, wrapper: str) -> None:
    plain = torch.load(checkpoints_dir / "ETDS_M5C16_x3.pth", weights_only=True)
    wrapped = {
        "params": {"params": plain},
        "params_ema": {"params_ema": plain, "params": {k: v * 0 for k, v in plain.items()}},
        "state_dict": {"state_dict": plain, "epoch": 3},
        "module": {f"module.{k}": v for k, v in plain.items()},
        "nested": {"model": {"state_dict": plain}},
    }[wrapper]
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    model = load_checkpoint(path)
    reference = load_checkpoint(checkpoints_dir / "ETDS_M5C16_x3.pth")
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_our_metadata_round_trip_and_atomic_write(tmp_path: Path) -> None:
    model = ETDSOnlyET(1, 1, 2, 1, 8, 1)  # width 7: also what the convention would say
    odd = Plain(3, 3, 2, 1, 29)  # width 29 with 3 colours: the convention says ETDSOnlyET
    for m in (model, odd):
        path = tmp_path / f"{m.arch}.pth"
        save_checkpoint(m, path)
        loaded = load_checkpoint(path)
        assert (loaded.arch, loaded.hparams) == (m.arch, m.hparams)
        assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    bare = tmp_path / "bare.pth"
    save_checkpoint(odd, bare, metadata=False)
    assert load_checkpoint(bare).arch == "ETDSOnlyET"  # without metadata: the convention
    assert load_checkpoint(bare, arch="Plain").arch == "Plain"


def test_plain_and_only_et_convention_and_override(checkpoints_dir: Path) -> None:
    """Same keys; the width decides (29 + 3 = 32 → ETDSOnlyET, 32 → Plain); ``arch=`` overrides
    and then gives a different function (the repeat-interleave shortcut)."""
    plain = load_checkpoint(checkpoints_dir / "Plain_M6C32_x4.pth")
    only_et = load_checkpoint(checkpoints_dir / "ETDS_M6C32_x4_only_ET.pth")
    assert set(plain.state_dict()) == set(only_et.state_dict())
    assert (plain.arch, only_et.arch) == ("Plain", "ETDSOnlyET")
    forced = load_checkpoint(checkpoints_dir / "Plain_M6C32_x4.pth", arch="ETDSOnlyET")
    assert forced.arch == "ETDSOnlyET" and forced.hparams["num_feat"] == 35
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (forced(x) - plain(x)).abs().max() > 0.1
    # behavioural evidence that the convention is right for the shipped pair: on a real-looking
    # smooth input each model's output is close to the input upsampled, the swapped reading not
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), size=(16, 16), mode="bilinear")
    target = torch.nn.functional.interpolate(smooth, scale_factor=4, mode="nearest")
    swapped = load_checkpoint(checkpoints_dir / "ETDS_M6C32_x4_only_ET.pth", arch="Plain")
    with torch.no_grad():
        for right, wrong in ((only_et, swapped), (plain, forced)):
            assert (right(smooth) - target).abs().mean() < (wrong(smooth) - target).abs().mean()


def test_fsrcnn_scale_comes_from_the_caller_or_the_name(tmp_path: Path) -> None:
    sd = FSRCNN(3).state_dict()
    with pytest.raises(CheckpointError, match="not stored in its weights"):
        from_state_dict(sd)
    assert from_state_dict(sd, upscale=3).upscale_factor == 3
    path = tmp_path / "FSRCNN_x4.pth"
    torch.save(sd, path)
    assert load_checkpoint(path).upscale_factor == 4  # the name, though the weights are ×3's
    assert load_checkpoint(path, upscale=3).upscale_factor == 3


# ---------------------------------------------------------------- hostile and broken files


class WritesMarker:
    """Unpickling this object would create the marker file (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": WritesMarker(marker)}, path)
    # the payloads are real: a plain unpickler does run them
    hostile_files = [path]
    for protocol in (2, pickle.HIGHEST_PROTOCOL):  # the latter uses framing torch lacks
        raw = tmp_path / f"evil{protocol}.pkl"
        raw.write_bytes(pickle.dumps(WritesMarker(marker), protocol=protocol))
        hostile_files.append(raw)
        pickle.loads(raw.read_bytes())
        assert marker.exists()
        marker.unlink()
    for hostile in hostile_files:
        with pytest.raises(CheckpointError, match=r"refused: .*weights_only.*nothing was executed"):
            load_checkpoint(hostile)
        assert not marker.exists()


def test_broken_files_raise_one_line_typed_errors(checkpoints_dir: Path, tmp_path: Path) -> None:
    good = (checkpoints_dir / "ESPCN_x4.pth").read_bytes()
    cases: dict[str, tuple[object, str]] = {
        "missing.pth": (None, "no such file"),
        "empty.pth": (b"", "empty file"),
        "truncated.pth": (good[: len(good) // 2], "truncated"),
        "garbage.pth": (b"not a checkpoint at all " * 8, "not a PyTorch checkpoint"),
        "tensor.pth": (torch.zeros(3), "not a state dict"),
        "list.pth": ([torch.zeros(3)], "not a state dict"),
        "strings.pth": ({"name": "x", "epoch": 1}, "not a state dict"),
        "unknown.pth": ({"encoder.weight": torch.zeros(3, 3)}, "unknown architecture.*known: "),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert isinstance(info.value, ValueError)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(bad: float) -> None:
    sd = ETDS(3, 3, 2, 1, 8, 3).state_dict()
    sd["backbone_convs.0.weight"][0, 0, 1, 1] = bad
    with pytest.raises(CheckpointError, match=r"non-finite.*backbone_convs.0.weight"):
        from_state_dict(sd)


def test_shape_and_key_mismatches_are_refused() -> None:
    sd = ETDS(3, 3, 2, 2, 8, 3).state_dict()
    wrong_shape = dict(sd, **{"residual_convs.1.weight": torch.zeros(3, 3, 5, 5)})
    with pytest.raises(CheckpointError, match=r"shape mismatch.*residual_convs.1.weight"):
        from_state_dict(wrong_shape)
    missing = {k: v for k, v in sd.items() if k != "residual_convs.1.bias"}
    with pytest.raises(CheckpointError, match=r"missing.*residual_convs.1.bias"):
        from_state_dict(missing)
    extra = dict(sd, **{"spare.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected.*spare.weight"):
        from_state_dict(extra)
    with pytest.raises(CheckpointError, match="unknown architecture 'VDSR'"):
        from_state_dict(sd, arch="VDSR")
    with pytest.raises(CheckpointError, match="not a ECBSRT state dict"):
        from_state_dict(sd, arch="ECBSRT")
    with pytest.raises(CheckpointError, match="×2, not ×3"):
        from_state_dict(sd, upscale=3)


def test_nothing_is_written_next_to_the_input(checkpoints_dir: Path) -> None:
    before = sorted(os.listdir(checkpoints_dir))
    load_checkpoint(checkpoints_dir / "ETDS_M4C32_x4.pth")
    assert sorted(os.listdir(checkpoints_dir)) == before
