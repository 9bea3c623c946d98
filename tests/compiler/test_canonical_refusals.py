"""Canonical patterns refusing graphs they once mis-handled: a zero pad that also widens the
channels under DBB-style border writes (G2 raised ``ValueError``), and a whole-image average
pool with ``divisor_override`` (G11 rewrote it to the mean, which it is not)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from et.compiler.canonical import global_pool, write_border
from tests.compiler.graphs import aten, workspace
from tests.compiler.test_canonical import BORDER_FILL, _bordered, _pool, _refuses


def test_a_pad_that_also_widens_the_channels_is_no_spatial_border() -> None:
    """``constant_pad_nd(x, [1, 1, 1, 1, 1, 0])`` adds a channel too: G2's identity
    ``pad₀(y − c) + c`` would put ``c`` into the new channel's interior, so it is refused (and
    the graph left as written), not crashed on."""
    fill = torch.cat([BORDER_FILL, torch.zeros(1, 1, 1, 1, dtype=torch.float64)], dim=1)
    strips = [(2, 0, 1), (2, -1, None), (3, 0, 1), (3, -1, None)]
    build, constants = _bordered([1, 1, 1, 1, 1, 0], strips, fills=[fill] * 4)
    _refuses(write_border, build, constants)


def test_a_whole_image_pool_with_a_divisor_override_is_kept() -> None:
    """``avg_pool2d(x, [4, 5], divisor_override=2)`` is the window sum over 2, ten times the
    mean here (checked against torch first), so G11 must leave it alone."""
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    overridden = F.avg_pool2d(x, (4, 5), divisor_override=2)
    assert torch.allclose(overridden, 10 * x.mean(dim=(2, 3), keepdim=True), rtol=1e-12)
    _refuses(global_pool, _pool([4, 5], [4, 5], [0, 0], False, True, 2))


def test_a_whole_image_pool_without_override_is_still_the_mean() -> None:
    """The refusal is that narrow: ``divisor_override=None`` written out is still G11."""
    ws, node = workspace(_pool([4, 5], [4, 5], [0, 0], False, True, None))
    assert global_pool(ws, node) is True
    assert list(ws.graph.nodes)[-1].args[0].target == aten.mean.dim
