"""G6: an element-wise map on channel slices. Properties over kinds, widths and slopes;
negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.stack_elementwise import ONE_KIND, TORCH_MODULES, WIDTHS, stack_elementwise
from et.strategies import image_batches, weight_tensors


def _sliced(maps, widths, y):
    parts, start = [], 0
    for module, width in zip(maps, widths, strict=True):
        parts.append(module(y[:, start : start + width]))
        start += width
    return torch.cat(parts, dim=1)


@given(data=st.data())
def test_stacked_map_equals_the_maps_on_the_slices(data: st.DataObject) -> None:
    widths = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    kind = data.draw(st.sampled_from(["ReLU", "LeakyReLU", "Identity", "PReLU"]))
    slope = data.draw(st.sampled_from([0.01, 0.2, -0.5]))
    maps = []
    for width in widths:
        if kind == "PReLU":
            count = data.draw(st.sampled_from([1, width]))
            module = nn.PReLU(count, dtype=torch.float64)
            with torch.no_grad():
                module.weight.copy_(data.draw(weight_tensors((count,))))
        else:
            module = nn.LeakyReLU(slope) if kind == "LeakyReLU" else getattr(nn, kind)()
        maps.append(module)
    y = data.draw(image_batches(sum(widths), ranges=((-3.0, 3.0),)))
    with torch.no_grad():
        expected, got = _sliced(maps, widths, y), stack_elementwise(maps, widths)(y)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


def test_registered_by_id_and_name() -> None:
    assert isinstance(apply_rule("G6", [nn.ReLU(), nn.ReLU()], [2, 3]), nn.ReLU)
    assert apply_rule("stack_elementwise", [nn.PReLU(2), nn.PReLU()], [2, 3]).weight.numel() == 5


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

Y = torch.linspace(-3.0, 3.0, 40, dtype=torch.float64).reshape(1, 4, 2, 5)


def _refused(condition: str, maps, widths) -> None:
    with pytest.raises(PreconditionError) as info:
        stack_elementwise(maps, widths)
    assert info.value.rule == "G6" and info.value.condition is condition


def test_mixed_kinds_or_slopes_differ_and_are_refused() -> None:
    maps = [nn.LeakyReLU(0.5), nn.LeakyReLU(0.25)]
    negative = -Y.abs() - 0.1
    assert (_sliced(maps, [2, 2], negative) - maps[0](negative)).abs().max() > 0.1
    _refused(ONE_KIND, maps, [2, 2])
    _refused(ONE_KIND, [nn.ReLU(), nn.Identity()], [2, 2])


def test_misaligned_widths_are_refused() -> None:
    _refused(WIDTHS, [nn.ReLU(), nn.ReLU()], [4])
    _refused(WIDTHS, [nn.PReLU(3), nn.PReLU()], [2, 2])


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted()
    assert torch.allclose(impostor(Y), nn.ReLU()(Y) + 1)
    _refused(TORCH_MODULES, [impostor, nn.ReLU()], [2, 2])
    _refused(TORCH_MODULES, [nn.ReLU(), nn.Hardtanh()], [2, 2])  # Hardtanh is no kind here
