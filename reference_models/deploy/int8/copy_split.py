"""Carried input copies split over equal channels so the conv that adds them keeps its levels.

    from reference_models.deploy.int8.copy_split import split_input_copies
    split, added = split_input_copies(laid_out)   # same function, ``added`` more channels

Why. Post-training INT8 (LiteRT, ONNX Runtime) gives every row ``r`` of a conv one weight scale,
``s_r = max|W[r]|/127``. In an ET form the conv that adds a carried input copy to learned
features (ABPN-ET's last 3×3 conv: ``z = x + residual``) reads the copy with a centre tap ``w_r``
(the shortcut's 1 over the copy's E10 factor) that is several times the row's largest learned
tap ``L_r``, so the learned taps get ``127·L_r/|w_r|`` levels instead of 127. Measured on ABPN-ET
×3 (E10 at strength 1, simulated, Set5): quantizing that conv's weights alone costs 54.2 dB of
PSNR against 63.3 dB for the same conv of the original ABPN, the largest single loss of the
network (``|w_r|/L_r`` ≈ 2.3–4.0).

What. Rule R25 (:mod:`et.rules.split_channel`) splits the copy channel ``c`` into ``m`` equal
channels whose columns sum to the original one. The pieces are chosen on the int8 grid: with
``Q_r = min(127·m, ⌊127·|w_r|/L_r⌋)`` and ``s_r = |w_r|/Q_r ≥ L_r/127``, the original column
keeps ``127·s_r`` (the row's largest tap, so the quantizer picks exactly ``s_r``) and the new
columns get the rest in pieces of at most 127 levels, each an integer multiple of ``s_r``. So the
copy still passes with no rounding (its taps are on the grid) and the learned taps get
``127·L_r/(|w_r|/Q_r·127)`` = up to all 127 levels. ``m`` is the smallest count that gives
every row reading the copy its full levels, at most :data:`MAX_PIECES`. The added channels cost
one row of the conv before and one column of the conv after each; the export's decision rule
(:mod:`reference_models.deploy.int8.decision`) offers the split beside the unsplit layouts and
keeps it only where the runtime measures it more faithful.

Only copies read by a centre tap alone (the other taps of their column 0) and rows that read one
copy are split; everything else is left as it is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.split_channel import split_channel
from reference_models.deploy.int8.input_copies import input_copy_bounds

__all__ = ["INT8_LEVELS", "MAX_PIECES", "copy_pieces", "split_chain_copies", "split_input_copies"]

#: Largest magnitude of a symmetric int8 weight (levels −127…127).
INT8_LEVELS = 127
#: Most channels one carried copy is split into (the cost grows by one row and one column each).
MAX_PIECES = 3


def copy_pieces(column: torch.Tensor, learned: torch.Tensor, max_pieces: int) -> torch.Tensor:
    """``E[i, r]`` (``i < m − 1``): the centre taps of the new columns for one copy channel.

    ``column[r]``: the copy's centre tap in row r; ``learned[r]``: the largest |tap| of row r on
    any other channel. Rows where the copy is not the largest tap, or that read no learned
    channel, get 0 (they are left as they are). ``m`` (the rows' count) is the smallest number of
    pieces of ≤ 127 levels that carries every row's tap at the scale ``L_r/127``, at most
    ``max_pieces``.
    """
    ratio = torch.where(
        (learned > 0) & (column != 0),
        INT8_LEVELS * column.abs() / learned.clamp_min(torch.finfo(learned.dtype).tiny),
        torch.zeros_like(column),
    )
    levels = torch.floor(ratio)
    wanted = [math.ceil(float(q) / INT8_LEVELS) for q in levels if q >= INT8_LEVELS]
    pieces = min(max_pieces, max(wanted, default=1))
    extra = torch.zeros(pieces - 1, column.numel(), dtype=column.dtype)
    for r in range(column.numel()):
        if levels[r] < INT8_LEVELS:
            continue
        total = min(INT8_LEVELS * pieces, int(levels[r]))
        step = float(column[r].abs()) / total  # s_r: the row's scale after the split
        rest = total - INT8_LEVELS  # the original column keeps 127 levels
        for i in range(pieces - 1):
            share = min(INT8_LEVELS, rest)
            extra[i, r] = math.copysign(share * step, float(column[r]))
            rest -= share
    return extra


def split_chain_copies(
    steps: list[tuple[nn.Conv2d, nn.Module]], *, max_pieces: int = MAX_PIECES
) -> int:
    """Split, in place in ``steps`` (a chain's ``(conv, activation)`` pairs, float64), every
    carried input copy that a learned row reads (module docstring); the channels added."""
    from reference_models.deploy.int8.layout import LayoutError

    bounds = input_copy_bounds(steps)
    added = 0
    for k, bound in enumerate(bounds):
        weight = steps[k + 1][0].weight.detach()
        kh, kw = weight.shape[-2:]
        copies = (bound > 0).nonzero().flatten().tolist()
        for c in copies:
            column = weight[:, c]
            centre = column[:, kh // 2, kw // 2]
            if kh % 2 == 0 or kw % 2 == 0 or column.abs().sum() != centre.abs().sum():
                continue  # not a centre tap alone
            reads = weight[:, copies].abs().amax(dim=(2, 3)) > 0
            single = reads.sum(dim=1) == 1  # rows that read this copy and no other
            others = torch.ones(weight.shape[1], dtype=torch.bool)
            others[c] = False
            learned = weight[:, others].abs().amax(dim=(1, 2, 3))
            taps = torch.where(single, centre, torch.zeros_like(centre))
            for piece in copy_pieces(taps, learned, max_pieces):
                kernel = torch.zeros_like(column)
                kernel[:, kh // 2, kw // 2] = piece
                (conv1, activation), (conv2, after) = steps[k], steps[k + 1]
                try:
                    conv1, activation, conv2 = split_channel(conv1, activation, conv2, c, kernel)
                except PreconditionError as error:
                    raise LayoutError(f"R25 layer {k}: {error}") from error
                steps[k], steps[k + 1] = (conv1, activation), (conv2, after)
                added += 1
            weight = steps[k + 1][0].weight.detach()
    return added


def split_input_copies(
    network: nn.Module, *, max_pieces: int = MAX_PIECES
) -> tuple[nn.Module, int]:
    """``network`` (a :class:`~reference_models.deploy.compiled_network.CompiledNetwork`) with
    every carried input copy that a learned row reads split by R25 into pieces on the int8
    weight grid (module docstring), computed in float64 and stored in the network's dtype, and
    the number of channels added (0: nothing to split; ``network`` itself is returned). The
    result is checked against ``network`` in float64."""
    from et.testing import compare_outputs, probe_inputs
    from reference_models.deploy.compiled_network import CompiledNetwork, program_colors
    from reference_models.deploy.int8.graph_chains import (
        chain_steps,
        conv_chains,
        graph_in_dtype,
        write_back,
    )
    from reference_models.deploy.int8.layout import (
        EQUIVALENCE_TOLERANCE,
        LayoutError,
        _floating_dtype,
    )

    if not isinstance(network, CompiledNetwork):
        raise LayoutError(f"{type(network).__name__}: the copy split runs on a compiled network")
    program = graph_in_dtype(network.program, torch.float64)
    added = 0
    for chain in conv_chains(program):
        steps = chain_steps(program, chain)
        count = split_chain_copies(steps, max_pieces=max_pieces)
        if count:
            write_back(program, chain, steps)
            added += count
    if not added:
        return network, 0
    original = graph_in_dtype(network.program, torch.float64)
    probes = probe_inputs((program_colors(program), 12, 12), samples=4, seed=0)
    error = compare_outputs(
        original, program, probes, dtype=torch.float64, weights64=False
    ).max_abs_error
    if not error <= EQUIVALENCE_TOLERANCE:
        raise LayoutError(f"R25 on the graph differs by {error:.3g} in float64")
    dtype = _floating_dtype(network.program)
    return network.with_program(graph_in_dtype(program, dtype)), added
