"""A partial-channel conv (``cat([conv(z[:, :k]), z[:, k:]])``, ``partial_channels.py``) whose
conv is dilated: R8 with an identity 1×1 writes it as an undilated ``d·(K − 1) + 1`` kernel
(zeros between the taps), the passed-on channels become identities of that kernel (R6), and the
parts stack (R11); a following 1×1 merges in (R9). Two dilated parts of different spans are
left, the refusal naming R11's geometry."""

from __future__ import annotations

import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import et
from et.rules.concat_convs import SAME_GEOMETRY
from tests.zoo.blocks import randomize
from tests.zoo.deploy_form import DeployForm, check_deploy_form


class DilatedPartial(nn.Module):
    """A K×K conv of dilation ``dilation`` on the first ``part`` channels ("same" padding),
    the rest passed on, then (``mix``) a 1×1 over all channels."""

    def __init__(
        self, channels: int, part: int, kernel: int, dilation: tuple[int, int], mix: bool
    ) -> None:
        super().__init__()
        padding = tuple(d * (kernel - 1) // 2 for d in dilation)
        self.part = part
        self.conv = nn.Conv2d(part, part, kernel, padding=padding, dilation=dilation)
        self.mix = nn.Conv2d(channels, channels, 1) if mix else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        touched = self.conv(z[:, : self.part])
        return self.mix(torch.cat([touched, z[:, self.part :]], 1))


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1),
    channels=st.integers(3, 6),
    kernel=st.sampled_from([3, 5]),
    dilation=st.sampled_from([(2, 2), (3, 3), (2, 1)]),
    mix=st.booleans(),
    size=st.integers(9, 12),
)
def test_a_dilated_partial_conv_and_its_mix_fold_to_one_conv(
    seed: int,
    channels: int,
    kernel: int,
    dilation: tuple[int, int],
    mix: bool,
    size: int,
) -> None:
    model = DilatedPartial(channels, channels // 2, kernel, dilation, mix)
    randomize(model, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (channels, size, size), DeployForm(convs=1))
    used = compiled.certificate.rules_used()
    assert used.get("R8") == 1 and used.get("R11") == 1, used
    assert "cat.default" not in compiled.certificate.ops_after


class TwoDilations(nn.Module):
    """Two conv parts of different dilation (spans 5 and 3) beside a passed-on slice."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(2, 2, 3, padding=2, dilation=2)
        self.narrow = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.wide(z[:, :2]), self.narrow(z[:, 2:4]), z[:, 4:]], 1)


def test_parts_of_different_spans_stay_and_the_refusal_names_the_geometry() -> None:
    model = randomize(TwoDilations(), torch.Generator().manual_seed(1)).double().eval()
    compiled = et.compile(model, (torch.rand(1, 6, 9, 9, dtype=torch.float64),))
    named = [u for u in compiled.certificate.unfolded if u.op == "aten.cat.default"]
    assert [(u.rule, u.precondition) for u in named] == [("R11", str(SAME_GEOMETRY))], named
    assert "kernel_size" in named[0].detail
