"""``etds convert``: verified, atomic output in the authors' layout; nothing written on failure;
the input is never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_support import trained
from etds_command import run_etds

from et.testing import probe_inputs
from etds.cli import main
from reference_models import ABPN, ABPN_ET, ESPCN, ETDS, ETDSForInference, save_checkpoint


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def etds_file(tmp_path: Path) -> Path:
    path = tmp_path / "etds_x3.pth"
    save_checkpoint(trained(ETDS(3, 3, 3, 2, 12, 3), seed=0), path, metadata=False)
    return path


def test_convert_writes_a_verified_plain_state_dict(etds_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "etds_x3_et.pth"
    done = run_etds("convert", str(etds_file), str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source_arch"] == "ETDS" and report["target_arch"] == "ETDSForInference"
    assert report["written"] is True and 0 <= report["max_abs_error_255"] <= 0.01
    # a plain state dict that the authors' class loads with strict=True
    state = torch.load(out, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    inference = ETDSForInference(3, 3, 3, 2, 12, 3)
    inference.load_state_dict(state, strict=True)
    # independent check of the written file against the original
    original = ETDS(3, 3, 3, 2, 12, 3)
    original.load_state_dict(torch.load(etds_file, weights_only=True), strict=True)
    x = probe_inputs((3, 9, 10), samples=10, seed=1, dtype=torch.float32)
    with torch.no_grad():
        gap = (original.eval()(x)[0].clamp(0, 1) - inference.eval()(x)).abs().max().item()
    assert gap * 255 <= 0.01
    assert _files(tmp_path) == {"etds_x3.pth", "etds_x3_et.pth"}  # no temporary file left


def test_text_output_prints_the_measured_error(etds_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["convert", str(etds_file), str(tmp_path / "out.pth")]) == 0
    out = capsys.readouterr().out
    assert "ETDS → ETDSForInference: max |error|" in out and "/255" in out
    assert f"wrote {tmp_path / 'out.pth'}" in out


def test_failed_verification_writes_nothing(etds_file: Path, tmp_path: Path) -> None:
    # the converted weights are rounded to float32 once, so the float64 check measures a
    # small non-zero error: a zero tolerance makes verification fail
    out = tmp_path / "never.pth"
    done = run_etds("convert", str(etds_file), str(out), "--tolerance", "0", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["equivalent"] is False and report["written"] is False
    assert report["max_abs_error_255"] > 0
    assert _files(tmp_path) == {"etds_x3.pth"}


def test_refuses_to_overwrite_the_input(etds_file: Path) -> None:
    before = etds_file.read_bytes()
    done = run_etds("convert", str(etds_file), str(etds_file))
    assert done.returncode == 2
    assert "refusing to overwrite the input" in done.stderr
    assert etds_file.read_bytes() == before


def test_refuses_the_input_under_another_name(etds_file: Path, tmp_path: Path, capsys) -> None:
    link = tmp_path / "alias.pth"
    link.symlink_to(etds_file)
    before = etds_file.read_bytes()
    assert main(["convert", str(etds_file), str(link)]) == 2
    assert etds_file.read_bytes() == before


@pytest.mark.parametrize("problem", ["unreadable", "not convertible", "bad align", "missing"])
def test_bad_input_exits_2_and_writes_nothing(problem: str, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.pth"
    args = ["convert", str(source), str(tmp_path / "out.pth")]
    if problem == "unreadable":
        source.write_bytes(b"\x00garbage")
    elif problem == "not convertible":
        save_checkpoint(trained(ESPCN(3, 2), seed=0), source, metadata=False)
    elif problem == "bad align":
        save_checkpoint(trained(ABPN(4, 1, 2), seed=0), source, metadata=False)
        args += ["--align", "0"]
    existing = _files(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert _files(tmp_path) == existing


def test_existing_output_survives_a_failed_conversion(etds_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep.pth"
    out.write_bytes(b"previous result")
    assert main(["convert", str(etds_file), str(out), "--tolerance", "0"]) == 1
    assert out.read_bytes() == b"previous result"


def test_converting_a_converted_file_is_the_identity(etds_file: Path, tmp_path: Path) -> None:
    once, twice = tmp_path / "once.pth", tmp_path / "twice.pth"
    assert main(["convert", str(etds_file), str(once)]) == 0
    assert main(["convert", str(once), str(twice)]) == 0
    a, b = torch.load(once, weights_only=True), torch.load(twice, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.shared
def test_authors_abpn_converts_to_their_et_file(checkpoints_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "abpn_et.pth"
    done = run_etds("convert", str(checkpoints_dir / "ABPN_M4C28_x3.pth"), str(out), "--json")
    assert done.returncode == 0, done.stderr
    ours = torch.load(out, weights_only=True)
    theirs = torch.load(checkpoints_dir / "ABPN_ET_M4C28_x3.pth", weights_only=True)
    ABPN_ET(28, 4, 3).load_state_dict(ours, strict=True)
    assert ours.keys() == theirs.keys()
    # the same layout, the same values up to float32 rounding of the folded weights
    assert all(torch.allclose(ours[k], theirs[k], rtol=0, atol=1e-6) for k in ours)


def test_target_picks_the_measured_alignment(tmp_path: Path) -> None:
    from reference_models import ECBSRT, load_checkpoint
    from reference_models.deploy.alignment import fastest_alignment

    source = tmp_path / "ecbsrt.pth"
    save_checkpoint(trained(ECBSRT(3, 3, 2, 2, 8, "prelu"), seed=3), source)
    widths = {}
    for target in ("onnxruntime-x86", "torch-x86"):
        out = tmp_path / f"{target}.pth"
        assert main(["convert", str(source), str(out), "--target", target]) == 0
        model = load_checkpoint(out)
        widths[target] = model.backbone[0][0].out_channels
        # 8 real + 3 identity channels, zero channels up to a multiple of the chosen alignment
        align = fastest_alignment("ECBSRT", target)
        assert widths[target] == -(-11 // align) * align
    # an explicit --align wins over --target
    out = tmp_path / "explicit.pth"
    assert (
        main(["convert", str(source), str(out), "--target", "onnxruntime-x86", "--align", "8"]) == 0
    )
    assert load_checkpoint(out).backbone[0][0].out_channels == 16


def test_convert_is_byte_identical_run_to_run(etds_file: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "out.pth", tmp_path / "b" / "other_name.pth"
    first.parent.mkdir()
    second.parent.mkdir()
    assert main(["convert", str(etds_file), str(first)]) == 0
    assert main(["convert", str(etds_file), str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.fixture
def ecbsr_with_identity(tmp_path: Path) -> Path:
    from reference_models import ECBSR

    path = tmp_path / "ecbsr_idt.pth"  # the authors' bare layout: with_idt leaves no trace
    save_checkpoint(trained(ECBSR(3, 3, 2, 1, 8, with_idt=1), seed=4), path, metadata=False)
    return path


def test_unseen_hyperparameter_exits_2_naming_the_flag(
    ecbsr_with_identity: Path, tmp_path: Path, capsys
) -> None:
    existing = _files(tmp_path)
    for command in ("convert", "export", "eval"):
        args = [command, str(ecbsr_with_identity)]
        args += [str(tmp_path / "out.pth")] if command == "convert" else []
        args += [str(tmp_path / "out.onnx")] if command == "export" else []
        args += ["--data", str(tmp_path)] if command == "eval" else []
        assert main(args) == 2, command
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "--hparam with_idt=" in lines[0], (command, lines)
    assert _files(tmp_path) == existing
    assert main(["convert", str(ecbsr_with_identity), "o.pth", "--hparam", "with_idt"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_told_hyperparameter_converts_the_true_model(
    ecbsr_with_identity: Path, tmp_path: Path
) -> None:
    from reference_models import ECBSR, load_checkpoint

    out = tmp_path / "et.pth"
    done = run_etds("convert", ecbsr_with_identity, out, "--hparam", "with_idt=1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_abs_error_255"] <= 0.01
    true_model = ECBSR(3, 3, 2, 1, 8, with_idt=1).eval()
    true_model.load_state_dict(torch.load(ecbsr_with_identity, weights_only=True))
    converted = load_checkpoint(out)
    x = probe_inputs((3, 9, 10), domain=(0.0, 1.0), samples=4, seed=5).float()
    with torch.no_grad():
        gap = (converted(x) - true_model(x).clamp(0, 1)).abs().max().item() * 255
    assert gap <= 0.01
    info = run_etds("info", ecbsr_with_identity)
    assert info.returncode == 0, info.stderr
    assert "with_idt" in info.stdout and "unknown (pass --hparam with_idt=...)" in info.stdout
    told = run_etds("info", ecbsr_with_identity, "--hparam", "with_idt=1", "--json")
    assert json.loads(told.stdout)["hparams"]["with_idt"] == 1
