"""Every PReLU layer of a conv chain as ReLU channel pairs (rule R24), an INT8 layout candidate.

    from reference_models.deploy.int8.relu_pairs import relu_pair_form
    paired = relu_pair_form(model)      # same function; only conv + ReLU in the chain

Why. LiteRT fuses a ReLU into its conv but runs a PReLU as a float op, so a PReLU layer stores
two int8 tensors: the conv output ``h`` and ``PReLU(h)``, each with one scale. In ECBSR's ET
form the learned channels of ``h`` reach far below zero while the image copies it carries are in
[0, 1], so the copies get a few levels per layer (measured: 5.4 dB behind the original ECBSR in
INT8 on Set5). R24 (:mod:`et.rules.prelu_as_relu_pair`) writes ``PReLU_a(h) = ReLU(h) −
a·ReLU(−h)`` with the negative half as extra channels of the same conv, so every layer stores one
non-negative tensor, each half has its own channel, and E10
(:mod:`reference_models.deploy.int8.int8_layout`) can even them out. Channels with slope 0 (the ET
form's carried image and padding channels) are ReLU channels already and are not doubled.

Plug-in: :func:`relu_pair_form` takes and returns a model whose chain
:func:`~reference_models.deploy.int8.int8_layout.int8_layout` understands, so a caller that chooses
between layouts adds it as one more candidate: ``int8_layout(relu_pair_form(model), images)``
(:func:`~reference_models.deploy.int8.int8_layout.int8_candidates` does).
"""

from __future__ import annotations

import copy
import itertools

from torch import nn

from et.contract import PreconditionError
from et.rules.prelu_as_relu_pair import prelu_as_relu_pair

__all__ = ["has_prelu_layers", "relu_pair_form"]


def has_prelu_layers(model: nn.Module) -> bool:
    """Whether some hidden layer of ``model``'s conv chain is a PReLU or LeakyReLU."""
    from reference_models.deploy.int8.int8_layout import LayoutError, chain_links

    try:
        links = chain_links(model)
    except LayoutError:
        return False
    return any(isinstance(link.activation, nn.PReLU | nn.LeakyReLU) for link in links[:-1])


def relu_pair_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which R24 has replaced every hidden PReLU/LeakyReLU of its conv
    chain by a ReLU (the conv before it gains the negated rows, the conv after it the columns
    ``−a_c·W₂[:, c]``). Raises :class:`~reference_models.deploy.int8.int8_layout.LayoutError` when a
    layer cannot take R24 or the model has no chain."""
    from reference_models.deploy.int8.int8_layout import LayoutError, chain_links

    paired = copy.deepcopy(model)
    links = chain_links(paired)
    for k, (first, second) in enumerate(itertools.pairwise(links)):
        if not isinstance(first.activation, nn.PReLU | nn.LeakyReLU):
            continue
        if first.activation_slot is None:
            raise LayoutError(f"layer {k}: its activation cannot be replaced")
        try:
            conv1, relu, conv2 = prelu_as_relu_pair(first.conv, first.activation, second.conv)
        except PreconditionError as error:
            raise LayoutError(f"layer {k}: {error}") from error
        setattr(first.owner, first.name, conv1)
        setattr(*first.activation_slot, relu)
        setattr(second.owner, second.name, conv2)
        first.conv, first.activation, second.conv = conv1, relu, conv2
    return paired
