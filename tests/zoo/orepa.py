"""OREPA (Hu et al., "Online Convolutional Re-parameterization", CVPR 2022), from the paper.

OREPA builds its kernel in every ``forward`` from parameters, then runs one conv and a
BatchNorm. The kernel is a per-output-channel weighted sum of branch kernels (the paper
replaces each branch's BatchNorm by a linear scaling ``s_i``):

    W = Σ_i diag(s_i)·W_i,   y = BN(conv(x, W)),

with the branches (all ``(C_out, C_in/g, K, K)``, ``g`` the groups):

* origin: a learned K×K kernel;
* 1×1: a learned 1×1 kernel embedded at the centre of a K×K one;
* average: a learned 1×1 kernel times the constant ``1/K²`` everywhere;
* prior: learned coefficients ``a[o, i, b]`` on fixed basis kernels ``P_b`` (the 2-D DCT
  basis, the paper's frequency prior), ``Σ_b a[o, i, b]·P_b``;
* 1×1 → K×K: a 1×1 ``R`` (with an identity added, so it starts as the identity) then a K×K
  ``E``, composed per group, ``W[o, i] = Σ_m E[o, m]·R[m, i]`` (an einsum);
* depthwise-separable: a depthwise K×K ``D`` on each input channel, then a 1×1 ``Q``,
  ``W[o, i] = Q[o, i]·D[i]`` (per group).

Deploy form: one K×K conv with the BatchNorm folded, whatever the branches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dct_basis(k: int) -> torch.Tensor:
    """The ``k²`` 2-D DCT-II basis kernels ``P_{uv}[h, w] = c_u c_v cos(π(2h+1)u/2k)·
    cos(π(2w+1)v/2k)`` (orthonormal), shape ``(k², k, k)``."""
    n = torch.arange(k, dtype=torch.float64)
    u = torch.arange(k, dtype=torch.float64)
    scale = torch.full((k,), math.sqrt(2.0 / k), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / k)
    rows = scale[:, None] * torch.cos(math.pi * (2 * n[None, :] + 1) * u[:, None] / (2 * k))
    return torch.einsum("uh,vw->uvhw", rows, rows).reshape(k * k, k, k).float()


class OREPAConv(nn.Module):
    """One OREPA conv: the kernel built online from six branches, one conv, a BatchNorm.
    ``identity_attribute``: the 1×1 → K×K branch's identity is a plain tensor attribute (as
    some published re-parameterization code keeps it), not a buffer."""

    BRANCHES = 6

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        internal: int | None = None,
        priors: int = 4,
        identity_attribute: bool = False,
    ) -> None:
        super().__init__()
        if cin % groups or cout % groups:
            raise ValueError("channels must divide by groups")
        self.k, self.stride, self.groups = k, stride, groups
        per_in = cin // groups
        self.internal = per_in if internal is None else internal  # per group
        m = self.internal
        self.origin = nn.Parameter(torch.randn(cout, per_in, k, k))
        self.one = nn.Parameter(torch.randn(cout, per_in, 1, 1))
        self.avg = nn.Parameter(torch.randn(cout, per_in, 1, 1))
        self.register_buffer("avg_kernel", torch.full((k, k), 1.0 / (k * k)))
        self.prior = nn.Parameter(torch.randn(cout, per_in, priors))
        self.register_buffer("basis", dct_basis(k)[:priors])
        self.reduce = nn.Parameter(torch.randn(groups * m, per_in, 1, 1))
        identity = torch.zeros(groups * m, per_in, 1, 1)
        for j in range(groups * m):
            identity[j, j % per_in] = 1.0 if m == per_in else 0.0
        if identity_attribute:  # a plain tensor attribute: neither parameter nor buffer
            self.reduce_identity = identity
        else:
            self.register_buffer("reduce_identity", identity)
        self.expand = nn.Parameter(torch.randn(cout, m, k, k))
        self.depthwise = nn.Parameter(torch.randn(cin, 1, k, k))
        self.pointwise = nn.Parameter(torch.randn(cout, per_in, 1, 1))
        self.scales = nn.Parameter(torch.randn(self.BRANCHES, cout))
        self.bn = nn.BatchNorm2d(cout)

    def kernel(self) -> torch.Tensor:
        """``Σ_i diag(s_i)·W_i``, recomputed from the parameters at every call."""
        k, g, m = self.k, self.groups, self.internal
        cout, per_in = self.origin.shape[:2]
        r = k // 2
        identity = self.reduce_identity.to(self.reduce)  # a plain attribute is not cast
        seq_1x1 = (self.reduce + identity).view(g, m, per_in)
        seq_kxk = self.expand.view(g, cout // g, m, k, k)
        sequential = torch.einsum("gmi,gomhw->goihw", seq_1x1, seq_kxk)
        dw = self.depthwise.view(g, per_in, k, k)
        pw = self.pointwise.view(g, cout // g, per_in)
        separable = torch.einsum("goi,gihw->goihw", pw, dw)
        kernels = (
            self.origin,
            F.pad(self.one, [r, r, r, r]),
            self.avg * self.avg_kernel,
            torch.einsum("oib,bhw->oihw", self.prior, self.basis),
            sequential.reshape(cout, per_in, k, k),
            separable.reshape(cout, per_in, k, k),
        )
        weight = 0
        for scale, kernel in zip(self.scales, kernels, strict=True):
            # the per-channel scaling written as an einsum, as a scaling layer on a kernel is
            weight = weight + torch.einsum("oihw,o->oihw", kernel, scale)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.kernel(), None, self.stride, self.k // 2, 1, self.groups)
        return self.bn(y)


class OREPALargeConv(nn.Module):
    """OREPA's large kernel: ``L`` stacked 3×3 OREPA kernels composed into one
    ``(2L + 1)×(2L + 1)`` kernel in ``forward`` by convolving the kernels themselves
    (``C[o, i] = Σ_m B[o, m] ∗ A[m, i]``, a full 2-D convolution: a conv on parameters), then
    one conv and a BatchNorm. Dense (``groups = 1``) or depthwise (``groups = C``). Deploy: one
    conv."""

    DEPLOY_CONVS = 1

    def __init__(self, cin: int, cout: int, layers: int = 3, stride: int = 1, groups: int = 1):
        super().__init__()
        if groups not in (1, cin) or (groups > 1 and cout != cin):
            raise ValueError("dense or depthwise only")
        self.stride, self.groups, self.k = stride, groups, 2 * layers + 1
        widths = [cin] * layers + [cout]
        self.parts = nn.ModuleList(
            OREPAConv(widths[i], widths[i + 1], 3, groups=groups) for i in range(layers)
        )
        self.bn = nn.BatchNorm2d(cout)

    def kernel(self) -> torch.Tensor:
        """The composition of the parts' kernels, first part first."""
        weight = self.parts[0].kernel()
        for part in self.parts[1:]:
            following = part.kernel().flip(2, 3)  # a conv correlates; the composition convolves
            # dense: kernels' input channels as the batch; depthwise: one channel per group
            composed = F.conv2d(weight.transpose(0, 1), following, padding=2, groups=self.groups)
            weight = composed.transpose(0, 1)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.kernel(), None, self.stride, self.k // 2, 1, self.groups)
        return self.bn(y)


class OREPANet(nn.Module):
    """A small OREPA network: a stride-2 K×K stem, a depthwise OREPA conv, a grouped one
    (in ≠ out channels), ReLU between. Deploy: one conv per OREPA conv (3)."""

    DEPLOY_CONVS = 3

    def __init__(self, colors: int = 3, width: int = 4, k: int = 7) -> None:
        super().__init__()
        self.stem = OREPAConv(colors, width, k, stride=2)
        self.depthwise = OREPAConv(width, width, k, groups=width)
        self.grouped = OREPAConv(width, 2 * width, 3, groups=2, internal=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.depthwise(x))
        return self.grouped(x)
