"""What an INT8 layout costs to run, and the rule that trades it against fidelity.

    from reference_models.deploy.int8.layout_cost import cheapest_within_slack, multiply_accumulates
    macs = multiply_accumulates(model, colors=3, height=360, width=640)
    winner = cheapest_within_slack(scores, macs, slack_db=0.25)      # an index into both lists

Why. The layouts E10/E11 make change weights only, so they cost what the plain network costs;
R24 (:mod:`reference_models.deploy.int8.relu_pairs`) adds a negated channel for every PReLU
channel with a non-zero slope, so the next conv reads up to twice the channels and the layer
computes twice the outputs: ECBSR ×2 goes from 3.97 to 11.90 GMACs at 360×640. A decision that
looks at fidelity alone takes any R24 layout that is a hair better; this rule takes it only where
the gain exceeds the slack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["DEFAULT_FIDELITY_SLACK_DB", "cheapest_within_slack", "multiply_accumulates"]

#: Fidelity (dB) a layout may give up against the best scored one and still win by being cheaper.
#: Small next to the gaps the layouts make (E11 or R24 on ECBSR-ET: 1.5–4 dB in LiteRT) and
#: above the spread of one score between runs of the same file on the same images (0).
DEFAULT_FIDELITY_SLACK_DB = 0.25


def multiply_accumulates(model: nn.Module, *, colors: int, height: int, width: int) -> int:
    """The multiply-accumulates of one ``model`` call on a ``1×colors×height×width`` input:
    half of what :class:`torch.utils.flop_counter.FlopCounterMode` counts (2 flops per
    multiply-add of every convolution and matrix product; elementwise ops count 0).

    Run on fake tensors (shapes only), so it costs no arithmetic at any size; the input takes
    the dtype of ``model``'s first floating tensor (a float64 layout rejects a float32 input)."""
    tensors = [*model.parameters(), *model.buffers()]
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x = mode.from_tensor(torch.zeros(1, colors, height, width, dtype=dtype))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    return int(counter.get_total_flops()) // 2


def cheapest_within_slack(
    scores: Sequence[float | None], macs: Sequence[int], *, slack_db: float
) -> int:
    """The index of the winner among candidates with fidelity ``scores`` (dB; ``None`` or NaN:
    not scored, never wins unless nothing was scored) and costs ``macs``:

        best = max scores;  eligible = {i : scores[i] ≥ best − slack_db};
        winner = the eligible i with the fewest MACs (ties: the higher score, then the lower i).

    ``slack_db = 0`` is "the highest score wins" (ties: fewer MACs, then the earlier one).
    Raises ``ValueError`` for a negative or non-finite slack or lists of different lengths."""
    if not (math.isfinite(slack_db) and slack_db >= 0):
        raise ValueError(f"slack_db must be finite and ≥ 0, got {slack_db}")
    if len(scores) != len(macs) or not scores:
        raise ValueError(f"{len(scores)} scores for {len(macs)} costs")
    values = [-math.inf if value is None or math.isnan(value) else float(value) for value in scores]
    best = max(values)
    eligible = [i for i, value in enumerate(values) if value >= best - slack_db]
    return min(eligible, key=lambda i: (macs[i], -values[i], i))
