"""Tests that kill the mutants of ``reference_models/conversions/verification.py`` (what ``etds
verify`` and ``etds convert`` measure) the conversion and command-line tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the command-line tests run
``etds verify`` in a child process, which mutmut cannot see, and the in-process tests always
passed every argument, so the defaults (12 samples, seed 0, eval mode), the arguments passed on
(samples, domain, dtype), the progress bar, reading PNG images (grey images, one colour, the
/255 scale) and the report's fields were never pinned.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import reference_models.conversions.verification as verification
from et.testing import EquivalenceReport
from reference_models.conversions.verification import (
    Verification,
    fuzz_inputs,
    image_inputs,
    max_clamped_difference,
    verify_models,
)


def _conv() -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(3, 3, 3, padding=1, dtype=torch.float64).eval()


def test_fuzz_inputs_defaults_and_arguments() -> None:
    assert fuzz_inputs(3)[0].shape[0] == 12
    assert fuzz_inputs(3, samples=4)[0].shape[0] == 4
    assert max(batch.max().item() for batch in fuzz_inputs(3, domain=(0, 255))) > 1
    with pytest.raises(ValueError) as raised:
        fuzz_inputs(3, domain=(0, math.inf))
    assert str(raised.value) == "the input range [0, inf] must be finite"


def test_verify_models_passes_its_arguments_on(monkeypatch) -> None:
    calls = []

    def recording(colors, **kwargs):
        calls.append(kwargs)
        return fuzz_inputs(colors, **kwargs)

    monkeypatch.setattr(verification, "fuzz_inputs", recording)
    conv = _conv()
    verify_models(conv, copy.deepcopy(conv), colors=3)
    verify_models(conv, copy.deepcopy(conv), colors=3, samples=4, seed=5, domain=(0, 2))
    assert calls[0]["seed"] == 0 and calls[0]["samples"] == 12
    assert calls[1] == {"samples": 4, "seed": 5, "domain": (0, 2)}
    result = verify_models(conv, copy.deepcopy(conv).float(), colors=3, dtype=torch.float64)
    assert result.dtype == "float64"


def test_the_progress_bar_counts_images_on_stderr(capsys) -> None:
    conv = _conv()
    total = sum(batch.shape[0] for batch in fuzz_inputs(3))
    verify_models(conv, copy.deepcopy(conv), colors=3, progress=True)
    err = capsys.readouterr().err
    assert "verify:" in err and f" 0/{total} " in err and "img/s" in err


def test_max_clamped_difference_runs_in_eval_mode_by_default() -> None:
    conv = _conv()
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    assert max_clamped_difference(conv, copy.deepcopy(conv), [x]).mode == "eval"


def _png(path: Path, mode: str, pixels: list[list]) -> None:
    image = Image.new(mode, (len(pixels[0]), len(pixels)))
    image.putdata([value for row in pixels for value in row])
    image.save(path)


def test_png_images_in_rgb_and_grey(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", "RGB", [[(255, 0, 51), (0, 102, 255)]])
    _png(tmp_path / "b.png", "L", [[255], [51]])
    rgb = image_inputs(tmp_path, 3)
    assert [t.dtype for t in rgb] == [torch.float64, torch.float64]
    assert rgb[0].tolist() == [[[[1.0, 0.0]], [[0.0, 0.4]], [[0.2, 1.0]]]]
    assert rgb[1].tolist() == [[[[1.0], [0.2]]] * 3]  # a grey image feeds all three colours
    grey = image_inputs(tmp_path, 1)
    assert grey[1].tolist() == [[[[1.0], [0.2]]]]
    assert grey[0].shape == (1, 1, 1, 2)


def test_image_inputs_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        image_inputs(tmp_path, 3)
    assert str(raised.value) == f"no PNG images in {tmp_path}"
    _png(tmp_path / "a.png", "L", [[1]])
    with pytest.raises(ValueError) as raised:
        image_inputs(tmp_path, 2)
    assert str(raised.value) == "images can feed models with 1 or 3 colours, not 2"


def test_a_verification_reports_in_255_units_and_names_dtypes() -> None:
    report = EquivalenceReport(
        max_abs_error=0.01,
        scale=1.0,
        rounding=1e-6,
        where=(0, 0, 0, 0),
        size=(4, 4),
        on_border=True,
        inputs=9,
        output_shape=(1, 3, 4, 4),
        dtype=torch.float32,
        oracle_dtype=torch.float32,
        mode="train",
        nonfinite=False,
    )
    result = Verification.from_report(report)
    assert result.max_abs_error_255 == pytest.approx(2.55)
    assert result.rounding_255 == pytest.approx(2.55e-4)
    assert (result.dtype, result.oracle_dtype, result.mode, result.inputs) == (
        "float32",
        "float32",
        "train",
        9,
    )


def test_an_error_equal_to_the_tolerance_is_within_it() -> None:
    assert Verification(max_abs_error_255=0.5, inputs=1).within(0.5)
