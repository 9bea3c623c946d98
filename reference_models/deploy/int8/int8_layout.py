"""The conv chain of one of our architectures' modules, for R24's module form only.

    from reference_models.deploy.int8.int8_layout import chain_links
    links = chain_links(model)   # [_Link(conv, activation, owner, name, activation_slot), ...]

The INT8 layout itself runs on the compiled graph of every network
(:mod:`reference_models.deploy.int8.layout`, :mod:`reference_models.deploy.int8.network_form`).
This module keeps only the walk over modules that
:func:`~reference_models.deploy.int8.relu_pairs.relu_pair_form` (rule R24 on our
architectures) still rewrites in place: ``ETDSForInference`` (the convs of its ReLU chain) and
every model whose body is an ``nn.Sequential`` ``backbone`` of convs and activations
(``ABPN_ET``, ``ECBSRET``, ``ABPN``, ``ECBSRT``). It goes once R24 runs on the graph too.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from reference_models.architectures.etds import ETDSForInference
from reference_models.deploy.int8.layout import LayoutError

__all__ = ["LayoutError", "chain_links"]


@dataclass
class _Link:
    """One ``conv → activation`` step of the chain, with where to write the conv back."""

    conv: nn.Conv2d
    activation: nn.Module
    owner: nn.Module
    name: str
    #: where the activation sits (``None``: ETDSForInference's functional ReLU)
    activation_slot: tuple[nn.Module, str] | None = None


def _flatten(sequential: nn.Sequential) -> list[tuple[nn.Module, nn.Module, str]]:
    leaves = []
    for name, child in sequential.named_children():
        if isinstance(child, nn.Sequential):
            leaves.extend(_flatten(child))
        else:
            leaves.append((child, sequential, name))
    return leaves


def _links(model: nn.Module) -> list[_Link]:
    if isinstance(model, ETDSForInference):
        relu = nn.ReLU()
        named = [(model, "conv_first")]
        named += [(model.backbone_convs, str(i)) for i in range(len(model.backbone_convs))]
        named += [(model, "conv_last"), (model, "conv_clip")]
        return [_Link(getattr(owner, name), relu, owner, name) for owner, name in named]
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Sequential):
        raise LayoutError(f"{type(model).__name__}: no conv chain (ETDSForInference or backbone)")
    leaves = _flatten(backbone)
    links = []
    for index, (module, owner, name) in enumerate(leaves):
        if isinstance(module, nn.Conv2d):
            following = leaves[index + 1] if index + 1 < len(leaves) else None
            if following is None or isinstance(following[0], nn.Conv2d):
                links.append(_Link(module, nn.Identity(), owner, name))
            else:
                links.append(_Link(module, following[0], owner, name, following[1:]))
        elif index == 0 or not isinstance(leaves[index - 1][0], nn.Conv2d):
            raise LayoutError(f"{type(model).__name__}: {type(module).__name__} not after a conv")
    return links


def chain_links(model: nn.Module) -> list[_Link]:
    """The ``conv → activation`` steps of ``model``'s chain (the live modules, with where each
    sits, so a pass can replace them); raises :class:`LayoutError` where there is no chain."""
    return _links(model)
