"""The R25 INT8 candidate: carried input copies split over channels on the int8 weight grid.

Exact in float64 on the released ABPN-ET; the copy still passes the conv that adds it with no
rounding (its pieces are integer multiples of the row's weight scale); the learned taps of those
rows get more int8 levels; the decision rule offers it; a network without copies gets none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from et.testing import compare_outputs, probe_inputs
from reference_models import load_checkpoint
from reference_models.deploy.int8.calibration import calibration_images, calibration_tiles
from reference_models.deploy.int8.copy_split import (
    INT8_LEVELS,
    copy_pieces,
    split_input_copies,
)
from reference_models.deploy.int8.decision import layout_candidates
from reference_models.deploy.int8.graph_chains import chain_steps, conv_chains, graph_in_dtype
from reference_models.deploy.int8.input_copies import input_copy_bounds
from reference_models.deploy.int8.layout import graph_layout
from reference_models.deploy.int8.network_form import layout_network
from reference_models.deploy.int8.simulation import fake_quant_weight, simulated_int8_fidelity_db


def _chain(network: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]]:
    """The longest conv chain of a compiled network, as float64 modules."""
    program = graph_in_dtype(network.program, torch.float64)
    return chain_steps(program, max(conv_chains(program), key=len))


def _laid_out(model: nn.Module, images: list[torch.Tensor]) -> nn.Module:
    """``model`` compiled and laid out by E10 at strength 1, the copies at their exact bound."""
    network, _ = layout_network(model, images)
    program, _ = graph_layout(network.program, images, strength=1.0)
    return network.with_program(program)


def test_pieces_sum_to_the_tap_on_the_rows_grid() -> None:
    column = torch.tensor([0.5, -0.5, 0.1, 0.3, 0.2], dtype=torch.float64)
    learned = torch.tensor([0.125, 0.2, 0.2, 0.0, 0.5], dtype=torch.float64)
    extra = copy_pieces(column, learned, max_pieces=3)
    # row 0 needs ⌈4⌉ = 4 pieces of 127 levels, capped at 3 (the largest need decides m)
    assert extra.shape == (2, 5)
    # rows 2 (copy below the learned taps), 3 (no learned tap) and 4 (below) are left alone
    assert torch.equal(extra[:, 2:], torch.zeros(2, 3, dtype=torch.float64))
    for r in (0, 1):
        kept = column[r] - extra[:, r].sum()
        scale = kept.abs() / INT8_LEVELS  # the kept piece is the row's largest tap
        assert scale >= learned[r] / INT8_LEVELS
        levels = torch.cat([kept.reshape(1), extra[:, r]]) / scale
        assert torch.allclose(levels, levels.round(), atol=1e-9)
        assert bool((levels.abs() <= INT8_LEVELS + 1e-9).all())
    # row 1: 127·0.5/0.2 = 317.5 → 317 levels: scale 0.5/317, pieces 127 + 127 + 63
    assert torch.allclose(
        extra[:, 1] * 317 / 0.5, torch.tensor([-127.0, -63.0], dtype=torch.float64)
    )


@pytest.fixture(scope="module")
def abpn_et(shared_dir: Path) -> tuple[nn.Module, list[torch.Tensor]]:
    model = load_checkpoint(shared_dir / "official/checkpoints/ABPN_ET_M4C28_x3.pth").eval()
    images = calibration_images(shared_dir / "data/Set5", 3, 32, 32, limit=4)
    return model, images


def test_the_split_is_exact_and_carries_the_copy_on_the_weight_grid(abpn_et) -> None:
    model, images = abpn_et
    laid_out = _laid_out(model, images)
    split, added = split_input_copies(laid_out)
    assert added == 6  # three colours, each into 3 pieces, in the tail's 30-channel layer
    x = probe_inputs((3, 16, 16), samples=3, seed=2)
    assert compare_outputs(laid_out, split, x).max_rel_error < 1e-5  # float32 storage
    before, after = _chain(laid_out), _chain(split)
    k = next(
        i for i, b in enumerate(input_copy_bounds(after)) if b.numel() > before[i][0].out_channels
    )
    conv, old = after[k + 1][0].weight.detach(), before[k + 1][0].weight.detach()
    copies = (input_copy_bounds(after)[k] > 0).nonzero().flatten()
    quantized = fake_quant_weight(conv)
    # each row adds its copy through pieces on its grid: the quantized sum is the tap itself
    # (to float32 rounding: the split is stored in the network's float32, as the file is)
    assert torch.allclose(
        quantized[:, copies].sum(dim=(1, 2, 3)),
        conv[:, copies].sum(dim=(1, 2, 3)),
        rtol=1e-6,
        atol=0,
    )
    # and the learned taps of those rows get a finer scale than without the split
    rows = conv[:, copies].abs().amax(dim=(1, 2, 3)) > 0
    learned = [c for c in range(old.shape[1]) if c not in set(copies.tolist())]
    assert bool((conv[rows].abs().amax(dim=(1, 2, 3)) < old[rows].abs().amax(dim=(1, 2, 3))).all())
    assert bool((conv[rows][:, learned].abs().amax(dim=(1, 2, 3)) > 0).all())


def test_the_split_raises_the_simulated_fidelity_and_is_a_candidate(abpn_et) -> None:
    model, images = abpn_et
    tiles = calibration_tiles(images, 32)
    laid_out = _laid_out(model, tiles)
    split, _ = split_input_copies(laid_out)
    # measured on Set5 LR (calibrated on 48×48 tiles): 48.08 dB → 49.28 dB
    assert (
        simulated_int8_fidelity_db(split, tiles) > simulated_int8_fidelity_db(laid_out, tiles) + 0.3
    )
    names = [c.name for c in layout_candidates(model, tiles)]
    assert "E10 1 (exact copies) + R25 split copies" in names
    assert not any("R25" in name for name in names if "calibrated copies" in name)


def test_a_network_without_carried_copies_is_not_split(shared_dir: Path) -> None:
    model = load_checkpoint(shared_dir / "official/checkpoints/ETDS_M5C16_x3.pth").eval()
    images = [torch.rand(1, 3, 16, 16)]
    network, _ = layout_network(model, images)
    assert split_input_copies(network) == (network, 0)
