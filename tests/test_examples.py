"""The README's RepVGG example runs, and the checker it uses flags a broken fold."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from et import apply_rule
from et.testing import assert_equivalent

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "repvgg_block.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("repvgg_block", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["repvgg_block"] = module
    spec.loader.exec_module(module)
    return module


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    _load_example().main()
    out = capsys.readouterr().out
    assert "float64: max |difference|" in out


def test_checker_flags_a_fold_that_drops_the_identity_branch() -> None:
    example = _load_example()
    torch.manual_seed(1)
    block = example.RepVGGBlock(4).double().eval()
    block.bn_id.running_mean.fill_(0.3)
    wrong = nn.Sequential(
        apply_rule(
            "merge_parallel_convs",
            [
                apply_rule("fuse_conv_bn", block.conv3, block.bn3),
                apply_rule("fuse_conv_bn", block.conv1, block.bn1),
            ],
        ),
        nn.ReLU(),
    )
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(block, wrong, input_shape=(4, 8, 8), domain=(-1.0, 1.0))
