"""Reading hyper-parameters back from a state dict's key names and tensor shapes.

Each architecture class recognises its own key set (:meth:`ReferenceModel.detection_rule`) and
reads its constructor arguments from the shapes
(:meth:`ReferenceModel.hyperparameters_from_state_dict`) with the helpers below. Shapes give
widths and depths; the scale comes from ``out = c·s² + e`` (``s = ⌊√(out // c)⌋``, ``e`` the
dummy channels of an ET form). What no shape shows is listed by the class instead
(:attr:`ReferenceModel.UNSEEN_HPARAMS`) and never guessed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, recognised or loaded (the message is one line)."""


def shape(sd: StateDict, key: str) -> tuple[int, ...]:
    """The shape of ``sd[key]``; a missing key is a :class:`CheckpointError`."""
    if key not in sd:
        raise CheckpointError(f"missing key {key!r}")
    return tuple(sd[key].shape)


def count(sd: StateDict, pattern: str, start: int = 0) -> int:
    """How many consecutive indices ``i = start, start + 1, …`` have ``pattern.format(i)``."""
    n = 0
    while pattern.format(start + n) in sd:
        n += 1
    return n


def scale_and_extra(out: int, colors: int, what: str) -> tuple[int, int]:
    """Split ``out = colors·s² + extra`` (largest ``s``)."""
    if out < colors:
        raise CheckpointError(f"{what} has {out} outputs, fewer than the {colors} colours")
    scale = math.isqrt(out // colors)
    return scale, out - colors * scale * scale


def exact_scale(out: int, colors: int, what: str) -> int:
    """``s`` with ``out = colors·s²`` exactly."""
    scale, extra = scale_and_extra(out, colors, what)
    if extra:
        raise CheckpointError(f"{what} has {out} outputs, not colours·scale² for {colors} colours")
    return scale


def align_for(out: int, colors: int, scale: int) -> int | None:
    """``None`` for the authors' dummy layout, else the smallest alignment reproducing ``out``."""
    from reference_models.architectures.base import aligned_outputs, authors_extra_outputs

    if out == colors * scale**2 + authors_extra_outputs(colors, scale):
        return None
    for align in range(1, out + 1):
        if aligned_outputs(colors, scale, align) == out:
            return align
    raise CheckpointError(f"cannot explain {out} output channels for {colors} colours at ×{scale}")


def act_type(sd: StateDict, key: str) -> str:
    """``prelu`` when the activation stores slopes; relu/softplus/linear store nothing → relu."""
    return "prelu" if key in sd else "relu"


def stack_hparams(
    colors: int, upscale: int, num_block: int, num_feat: int, **more: Any
) -> dict[str, Any]:
    """The arguments the conv-stack models share (colours in = out), then ``more``."""
    return {
        "num_in_ch": colors,
        "num_out_ch": colors,
        "upscale": upscale,
        "num_block": num_block,
        "num_feat": num_feat,
        **more,
    }


def single_stream_kind(sd: StateDict) -> tuple[str, str] | None:
    """``(class name, reason)`` for Plain / ETDSOnlyET, whose key sets are identical.

    The rule is channel alignment: ETDSOnlyET's backbone has ``num_feat - c`` channels with
    ``num_feat`` a multiple of 4, so a width ``w`` with ``w % 4 != 0`` and ``(w + c) % 4 == 0``
    is read as ETDSOnlyET (29 + 3 = 32), any other width as Plain (32). A convention, not a
    proof: pass ``--arch`` (or save with metadata) for models that break it.
    """
    keys = set(sd)
    if "conv_first.weight" not in keys or keys & {"conv_clip.weight", "conv_residual_first.weight"}:
        return None
    width, colors = sd["conv_first.weight"].shape[:2]
    if width % 4 != 0 and (width + colors) % 4 == 0:
        return "ETDSOnlyET", (
            f"single stream of width {width} (+{colors} colours = {width + colors}, a multiple "
            "of 4): the ETDSOnlyET convention; pass --arch Plain if it is not"
        )
    return "Plain", (
        f"single stream of width {width} (not of the form 4k - {colors}): read as Plain; "
        "pass --arch ETDSOnlyET if it is not"
    )


def rule_of(kind: tuple[str, str] | None, cls: type) -> str | None:
    """The reason of ``kind`` when it names ``cls``, else ``None``."""
    return kind[1] if kind is not None and kind[0] == cls.__name__ else None


#: No super-resolution model of this family comes near this many weights in one tensor.
MAX_TENSOR_ELEMENTS = 2**28


def check_tensor_sizes(sd: StateDict) -> None:
    """Refuse tensors that claim more elements than their file stores, or absurdly many.

    A crafted file can declare a huge tensor over a tiny storage (stride 0); touching its values
    would allocate the declared size. This check reads only the metadata.
    """
    for key, tensor in sd.items():
        declared = tensor.numel()
        if declared > MAX_TENSOR_ELEMENTS:
            raise CheckpointError(
                f"tensor {key!r} declares {declared:,} elements (shape {tuple(tensor.shape)}), "
                f"over the limit of {MAX_TENSOR_ELEMENTS:,}"
            )
        stored = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if declared > stored:
            raise CheckpointError(
                f"tensor {key!r} declares {declared:,} elements but its file stores {stored:,}"
            )


def check_finite(sd: StateDict) -> None:
    """Refuse NaN or infinite weights (they would poison every output)."""
    for key, tensor in sd.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"non-finite weights (NaN/Inf): {bad} value(s) in {key!r}")
