"""The common base of the reference models and the architecture registry.

Every reference model records the keyword arguments that rebuild it (:attr:`ReferenceModel.hparams`)
so that a checkpoint written by us can carry them, ``etds info`` can print them, and
:func:`build_model` can rebuild the same network from its architecture name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from torch import nn

from reference_models.architectures.state_dict import CheckpointError, StateDict

ModelT = TypeVar("ModelT", bound=type["ReferenceModel"])

#: architecture name (the authors' class name) -> class
ARCHITECTURES: dict[str, type[ReferenceModel]] = {}


class ReferenceModel(nn.Module):
    """An ``nn.Module`` that knows its architecture name, upscale factor and hyper-parameters."""

    arch: str = ""
    #: hyper-parameters that change the function but leave no trace in the state dict:
    #: name -> what it means and which values it takes (detection reports them as unknown)
    UNSEEN_HPARAMS: ClassVar[dict[str, str]] = {}

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        """Why ``state_dict`` is one of this class (key names and a few shapes), else ``None``.

        The rules of all classes are mutually exclusive; a class that cannot be recognised
        from its weights alone (Bicubic has none) keeps this default.
        """
        del state_dict
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict[str, Any]:
        """The constructor arguments that ``state_dict``'s shapes imply (those in
        :attr:`UNSEEN_HPARAMS` left out); :class:`CheckpointError` where they do not fit."""
        del state_dict
        raise CheckpointError(f"{cls.__name__} cannot be read from a state dict")

    def __init__(self) -> None:
        super().__init__()
        self._hparams: dict[str, Any] = {}
        self.upscale_factor: int = 1
        self.colors: int = 3

    def _record(self, hparams: dict[str, Any], *, upscale: int, colors: int) -> None:
        """Keep the constructor arguments (the rebuild recipe), the scale and the colour count."""
        self._hparams = dict(hparams)
        self.upscale_factor = int(upscale)
        self.colors = int(colors)

    def _record_stack(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        **more: Any,
    ) -> None:
        """``_record`` for the conv-stack models (Plain, ETDS, ECBSR): the five arguments they
        share, in the authors' order, then ``more`` in the order given; colours = input channels.
        """
        self._record(
            {
                "num_in_ch": num_in_ch,
                "num_out_ch": num_out_ch,
                "upscale": upscale,
                "num_block": num_block,
                "num_feat": num_feat,
                **more,
            },
            upscale=upscale,
            colors=num_in_ch,
        )

    @property
    def hparams(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this architecture: ``type(self)(**model.hparams)``."""
        return dict(self._hparams)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._hparams.items())


def register_arch(cls: ModelT) -> ModelT:
    """Class decorator: file the class under its name in :data:`ARCHITECTURES`."""
    cls.arch = cls.__name__
    ARCHITECTURES[cls.__name__] = cls
    return cls


def build_model(arch: str, **hparams: Any) -> ReferenceModel:
    """Build the architecture ``arch`` (an authors' class name) from keyword hyper-parameters."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {arch!r}; known: {known}") from None
    return cls(**hparams)


def make_activation(act_type: str, channels: int) -> nn.Module:
    """The ECBSR activation vocabulary: prelu (per channel), relu, rrelu, softplus, linear."""
    factories: dict[str, Callable[[], nn.Module]] = {
        "prelu": lambda: nn.PReLU(num_parameters=channels),
        "relu": lambda: nn.ReLU(),
        "rrelu": lambda: nn.RReLU(lower=-0.05, upper=0.05),
        "softplus": lambda: nn.Softplus(),
        "linear": lambda: nn.Identity(),
    }
    if act_type not in factories:
        raise ValueError(f"{act_type=} is not one of {sorted(factories)}")
    return factories[act_type]()


def authors_extra_outputs(channels: int, upscale: int) -> int:
    """Dummy output channels the authors append before PixelShuffle: 1 at ×3, otherwise 0.

    Their ET forms pad ``c·s²`` to a multiple of 4 for mobile kernels; for RGB that is 27 → 28
    at ×3 and already aligned at ×2 and ×4. The rule is kept literally (also for 1 colour).
    """
    del channels
    return 1 if upscale == 3 else 0


def aligned_outputs(channels: int, upscale: int, align: int | None) -> int:
    """Channels of the last conv: ``c·s²`` plus the authors' extra one at ×3 (``align=None``),
    or ``c·s²`` rounded up to a multiple of ``align``."""
    needed = channels * upscale**2
    if align is None:
        return needed + authors_extra_outputs(channels, upscale)
    if align < 1:
        raise ValueError(f"{align=} must be a positive integer or None")
    return -(-needed // align) * align


def check_positive(**values: int) -> None:
    """Raise ``ValueError(f"{name=} ...")`` for a size that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")


def parameter_count(model: nn.Module) -> int:
    """Number of scalars in ``model.parameters()`` (frozen ones such as ECB masks included)."""
    return sum(p.numel() for p in model.parameters())
