"""G5: a conv reading a channel slice reads the whole tensor with zero weight columns.

Theorem. Let ``z`` have C channels and let a conv with m input channels read
``z[:, a : e : t]`` (``aten.slice(z, 1, a, e, t)``: channels ``a + j·t`` for ``j < m``, with
PyTorch's clipping of negative and out-of-range ends). Its dense weight ``D[o, j, u, v]`` (the
groups written out as zero blocks) becomes a dense conv on all C channels with

    W'[o, a + j·t, u, v] = D[o, j, u, v],   W'[o, c, u, v] = 0 for every other c,

because output o sums ``Σ_j Σ_{u,v} D[o, j, u, v] · z[a + j·t, …]`` and the other channels
enter with weight 0 (whatever their padding: zero, reflect, replicate or circular pads act on
each channel alone). So for every z, stride, padding, padding mode, dilation, groups and bias,

    conv(z[:, a : e : t]; W, b) = conv(z; W', b)   (groups 1).

A slice on another axis is no channel selection (a spatial one is G12's crop), and the slice
must give exactly the conv's m input channels.
"""

from __future__ import annotations

from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like
from et.rules.merge_sequential_convs import dense_weight

RULE_ID = "G5"

CHANNEL_AXIS = Precondition(
    RULE_ID,
    "channel_axis",
    "the slice is on the channel axis (dim 1 or −3 of NCHW) with step ≥ 1",
    why="a spatial slice is G12's crop; torch has no step ≤ 0",
)
WIDTH = Precondition(
    RULE_ID,
    "width",
    "the slice holds exactly conv.in_channels channels",
    why="otherwise the conv cannot read it",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def sliced_channels(
    total: int, start: int | None = 0, end: int | None = None, step: int | None = 1, dim: int = 1
) -> range:
    """The channels ``z[:, start:end:step]`` selects out of ``total`` (PyTorch's clipping)."""
    step = 1 if step is None else step
    CHANNEL_AXIS.require(dim in (1, -3) and step >= 1, f"dim {dim}, step {step}")
    return range(*slice(start, end, step).indices(total))


def widen_channel_slice(
    conv: nn.Conv2d,
    total: int,
    start: int | None = 0,
    end: int | None = None,
    step: int | None = 1,
    dim: int = 1,
) -> nn.Conv2d:
    """A new dense conv on ``total`` channels equal to ``conv(z[:, start:end:step])``."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    channels = sliced_channels(total, start, end, step, dim)
    WIDTH.require(
        len(channels) == conv.in_channels,
        f"the slice holds {len(channels)} channels, the conv reads {conv.in_channels}",
    )
    dense = dense_weight(conv.weight.detach(), conv.groups)
    wide = dense.new_zeros((dense.shape[0], total, *dense.shape[2:]))
    wide[:, channels.start : channels.stop : channels.step] = dense
    bias = conv_bias(conv) if conv.bias is not None else None
    return conv_like(conv, wide, bias, groups=1)


RULE = register(
    Rule(
        id=RULE_ID,
        name="widen_channel_slice",
        title="Conv reading a channel slice",
        statement="conv(x[:, a:b]; W) = conv(x; W') with W' zero outside input channels a..b",
        preconditions=(CHANNEL_AXIS, WIDTH, TORCH_MODULES),
        transform=widen_channel_slice,
        proof="proofs.rules.widen_channel_slice",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
