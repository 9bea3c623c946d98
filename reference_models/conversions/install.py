"""Write the layers a conversion produced into a freshly built target model.

A converter derives each layer of the target with rules from :mod:`et`; this module only copies
the resulting tensors into the target architecture's modules (so parameter names are the
authors'), after checking that the two agree on shape and geometry: a layer that does not fit
its slot is a converter bug and must fail loudly rather than be truncated or broadcast.
"""

from __future__ import annotations

import torch
from torch import nn

from et.conv_geometry import conv_bias, geometry_of


def install_conv(slot: nn.Conv2d, layer: nn.Conv2d, name: str) -> None:
    """Copy ``layer``'s weight and bias into ``slot`` (same geometry required)."""
    if not isinstance(slot, nn.Conv2d) or not isinstance(layer, nn.Conv2d):
        raise TypeError(
            f"{name}: expected two Conv2d, got {type(slot).__name__}, {type(layer).__name__}"
        )
    expected, got = geometry_of(slot), geometry_of(layer)
    if expected != got:
        raise ValueError(f"{name}: converted layer {got} does not fit the target's {expected}")
    with torch.no_grad():
        slot.weight.copy_(layer.weight.detach())
        if slot.bias is not None:
            slot.bias.copy_(conv_bias(layer))
        elif layer.bias is not None and bool(layer.bias.detach().ne(0).any()):
            raise ValueError(f"{name}: the target has no bias but the converted layer needs one")


def install_activation(slot: nn.Module, layer: nn.Module, name: str) -> None:
    """Copy a PReLU's slopes (other activations carry no parameters and must match in type)."""
    if type(slot) is not type(layer):
        raise TypeError(
            f"{name}: activation {type(layer).__name__} does not fit {type(slot).__name__}"
        )
    if isinstance(slot, nn.PReLU):
        if slot.weight.shape != layer.weight.shape:
            raise ValueError(
                f"{name}: PReLU slopes {tuple(layer.weight.shape)} do not fit "
                f"{tuple(slot.weight.shape)}"
            )
        with torch.no_grad():
            slot.weight.copy_(layer.weight.detach())


def like(model: nn.Module, reference: nn.Module) -> nn.Module:
    """``model`` moved to the dtype and device of ``reference``'s first parameter, in eval mode."""
    parameter = next(reference.parameters(), None)
    if parameter is not None:
        model = model.to(dtype=parameter.dtype, device=parameter.device)
    return model.eval()
