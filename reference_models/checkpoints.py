"""Safe checkpoint loading and architecture detection from a state dict alone.

Files are read with ``torch.load(path, weights_only=True)`` only, so a pickle that would run
code is refused before anything in it executes. Every failure becomes a
:class:`CheckpointError` (a ``ValueError``) with one line that says what is wrong.

Wrappers unwrapped: ``{"params_ema": sd}`` (preferred, BasicSR's EMA weights), ``{"params": sd}``,
``{"state_dict": sd}``, ``{"model": sd}``, nested up to 3 levels, and a ``module.`` prefix on
every key (DataParallel). Our own files (:func:`save_checkpoint`) are ``{"params": sd, "etds":
{"arch": name, "hparams": {...}}}``: BasicSR's ``load_network`` reads them unchanged, and the
recorded architecture wins over detection.

Detection rules (key names are the authors'; ``c`` = input channels of the first conv):

* ``conv_first.*``: ``conv_clip`` present → ETDSForInference; ``conv_residual_first`` present →
  a dual-stream training form: ``advanced_residual_convs`` → ETDSAblationAdvancedResidual,
  ``add_residual_convs`` → ETDS, neither → ETDSAblationResidual (with ``num_block = 0`` the
  three are the same network and are reported as ETDS). Otherwise Plain or ETDSOnlyET,
  whose key sets are identical; the rule is channel alignment: ETDSOnlyET's backbone has
  ``num_feat - num_residual_feat`` channels with ``num_residual_feat = c`` and ``num_feat`` a
  multiple of 4, so a width ``w`` with ``w % 4 != 0`` and ``(w + c) % 4 == 0`` is read as
  ETDSOnlyET (29 + 3 = 32), any other width as Plain (32). This is a convention, not a proof:
  pass ``arch=`` (or save with metadata) for models that break it.
* ``backbone.0.conv3x3.*`` → ECBSR (training form; ``act_type`` is ``prelu`` when the
  activation has weights, otherwise read as ``relu``: relu/softplus/linear store nothing).
* ``backbone.0.0.*`` → ECBSRT, or ECBSRET when the last layer is a 1×1 conv (the clip).
* ``backbone.0.*`` (flat) → ABPN, or ABPN_ET when the tail ends in a 1×1 conv.
* ``conv1/conv2/conv3`` → ESPCN; ``first_part/mid_part/last_part`` → FSRCNN.

Scale: ``out = c·s² + e``, ``s = ⌊√(out // c)⌋``, ``e`` the dummy channels of an ET form (the
authors' 1 at ×3 → ``align=None``, otherwise the smallest ``align`` that reproduces ``out``).
FSRCNN's scale is the stride of its transposed conv, which a state dict does not store: it is
taken from ``upscale=``, our metadata, or a ``_x<s>`` in the file name, in that order.
ETDSForInference's ``num_residual_feat`` does not change any shape and is reported as ``c``.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from et.atomic_file import atomic_path
from reference_models.architectures.base import (
    ARCHITECTURES,
    ReferenceModel,
    aligned_outputs,
    authors_extra_outputs,
)

StateDict = dict[str, torch.Tensor]

#: wrapper keys, in order of preference
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "network")
#: the key under which our files record the architecture
METADATA_KEY = "etds"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, recognised or loaded (the message is one line)."""


@dataclass(frozen=True)
class DetectedArchitecture:
    """What a state dict was recognised as, and why."""

    arch: str
    hparams: dict[str, Any]
    rule: str
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- reading files


def _first_line(error: BaseException, limit: int = 120) -> str:
    """The first sentence of an error message, at most ``limit`` characters."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = line.split(". ")[0].rstrip(".")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _refused_global(message: str) -> str:
    """The 'unsupported GLOBAL …' detail of a weights-only refusal, if torch gave one."""
    for line in message.splitlines():
        if "GLOBAL" in line or "global" in line or "Unsupported" in line:
            return line.strip()
    return ""


def _starts_like_pickle(path: Path) -> bool:
    """Whether the file opens with a pickle PROTO opcode (0x80) or is a zip (``PK``)."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return head[:1] == b"\x80" or head == b"PK"


def load_state_dict_file(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[StateDict, dict[str, Any]]:
    """Read ``path`` safely and return ``(state_dict, metadata)`` (metadata ``{}`` if none)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the weights-only unpickler
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        if "Unsupported operand" in message and not _starts_like_pickle(path):
            # bytes that are no pickle at all (a pickle with an opcode the restricted
            # unpickler lacks, e.g. protocol 5 framing, still counts as a refused pickle)
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint (unrecognised format)"
            ) from None
        if "Weights only load failed" in message:
            detail = _refused_global(message)
            raise CheckpointError(
                f"{path}: refused: a pickle that weights_only loading does not accept (it may "
                f"hold code; nothing was executed){': ' + detail if detail else ''}"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(error)})") from None
    except KeyError:
        # the legacy (non-zip) reader looks up a magic number and fails with a bare KeyError
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unrecognised format)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: unreadable or truncated PyTorch file ({_first_line(error)})"
        ) from None
    except Exception as error:  # any other unpickling failure is still a bad file
        raise CheckpointError(
            f"{path}: unreadable PyTorch file ({type(error).__name__}: {_first_line(error)})"
        ) from None
    try:
        return unwrap_state_dict(obj)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


def unwrap_state_dict(obj: Any) -> tuple[StateDict, dict[str, Any]]:
    """Find the state dict inside a loaded object; return it with our metadata (or ``{}``)."""
    metadata: dict[str, Any] = {}
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"not a state dict (the file holds a {type(obj).__name__})")
        if isinstance(obj.get(METADATA_KEY), Mapping) and not metadata:
            metadata = dict(obj[METADATA_KEY])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            kinds = sorted({type(v).__name__ for v in obj.values()})
            raise CheckpointError(
                "not a state dict (no tensors under the keys "
                f"{list(obj)[:6]}; value types {kinds}; wrappers tried: {', '.join(WRAPPER_KEYS)})"
            )
        obj = inner
    else:
        raise CheckpointError("not a state dict (wrappers nested more than 3 levels deep)")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state, metadata


# --------------------------------------------------------------------------- detection helpers


def _shape(sd: StateDict, key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"missing key {key!r}")
    return tuple(sd[key].shape)


def _count(sd: StateDict, pattern: str) -> int:
    """How many consecutive indices ``i = 0, 1, …`` have ``pattern.format(i)`` in ``sd``."""
    n = 0
    while pattern.format(n) in sd:
        n += 1
    return n


def _scale_and_extra(out: int, colors: int, what: str) -> tuple[int, int]:
    """Split ``out = colors·s² + extra`` (largest ``s``)."""
    if out < colors:
        raise CheckpointError(f"{what} has {out} outputs, fewer than the {colors} colours")
    scale = math.isqrt(out // colors)
    return scale, out - colors * scale * scale


def _exact_scale(out: int, colors: int, what: str) -> int:
    scale, extra = _scale_and_extra(out, colors, what)
    if extra:
        raise CheckpointError(f"{what} has {out} outputs, not colours·scale² for {colors} colours")
    return scale


def _align_for(out: int, colors: int, scale: int) -> int | None:
    """``None`` for the authors' dummy layout, else the smallest alignment reproducing ``out``."""
    if out == colors * scale**2 + authors_extra_outputs(colors, scale):
        return None
    for align in range(1, out + 1):
        if aligned_outputs(colors, scale, align) == out:
            return align
    raise CheckpointError(f"cannot explain {out} output channels for {colors} colours at ×{scale}")


def _act_type(sd: StateDict, key: str) -> str:
    return "prelu" if key in sd else "relu"


# --------------------------------------------------------------------------- per-architecture


def _stack_hparams(
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


def _conv_last_scale(sd: StateDict, colors: int) -> int:
    return _exact_scale(_shape(sd, "conv_last.weight")[0], colors, "conv_last")


def _backbone_convs(sd: StateDict) -> int:
    return _count(sd, "backbone_convs.{}.weight")


def _dual_stream_hparams(sd: StateDict) -> dict[str, Any]:
    colors = _shape(sd, "conv_first.weight")[1]
    backbone = _shape(sd, "conv_first.weight")[0]
    residual = _shape(sd, "conv_residual_first.weight")[0]
    return _stack_hparams(
        colors,
        _conv_last_scale(sd, colors),
        _backbone_convs(sd),
        backbone + residual,
        num_residual_feat=residual,
    )


def _only_et_hparams(sd: StateDict) -> dict[str, Any]:
    colors, backbone = _shape(sd, "conv_first.weight")[1], _shape(sd, "conv_first.weight")[0]
    return _stack_hparams(
        colors,
        _conv_last_scale(sd, colors),
        _backbone_convs(sd),
        backbone + colors,
        num_residual_feat=colors,
    )


def _plain_hparams(sd: StateDict) -> dict[str, Any]:
    colors, width = _shape(sd, "conv_first.weight")[1], _shape(sd, "conv_first.weight")[0]
    return _stack_hparams(colors, _conv_last_scale(sd, colors), _backbone_convs(sd), width)


def _etds_inference_hparams(sd: StateDict) -> dict[str, Any]:
    colors, width = _shape(sd, "conv_first.weight")[1], _shape(sd, "conv_first.weight")[0]
    out = _shape(sd, "conv_last.weight")[0]
    scale, _ = _scale_and_extra(out, colors, "conv_last")
    return _stack_hparams(
        colors,
        scale,
        _backbone_convs(sd),
        width,
        num_residual_feat=colors,
        align=_align_for(out, colors, scale),
    )


def _ecbsr_hparams(sd: StateDict) -> dict[str, Any]:
    colors = _shape(sd, "backbone.0.conv3x3.weight")[1]
    feat = _shape(sd, "backbone.0.conv3x3.weight")[0]
    layers = _count(sd, "backbone.{}.conv3x3.weight")
    if layers < 2:
        raise CheckpointError("ECBSR needs at least a first and a last ECB")
    mid = _shape(sd, "backbone.0.conv1x1_3x3.k0")[0]
    last = _shape(sd, f"backbone.{layers - 1}.conv3x3.weight")[0]
    return _stack_hparams(
        colors,
        _exact_scale(last, colors, "the last ECB"),
        layers - 2,
        feat,
        act_type=_act_type(sd, "backbone.0.act.weight"),
        depth_multiplier=mid / feat,
    )


def _ecbsrt_hparams(sd: StateDict) -> dict[str, Any]:
    colors, feat = _shape(sd, "backbone.0.0.weight")[1], _shape(sd, "backbone.0.0.weight")[0]
    layers = _count(sd, "backbone.{}.0.weight")
    if layers < 2:
        raise CheckpointError("ECBSRT needs at least a first and a last conv")
    last = _shape(sd, f"backbone.{layers - 1}.0.weight")[0]
    return _stack_hparams(
        colors,
        _exact_scale(last, colors, "the last conv"),
        layers - 2,
        feat,
        act_type=_act_type(sd, "backbone.0.1.weight"),
    )


def _ecbsret_hparams(sd: StateDict) -> dict[str, Any]:
    colors, width = _shape(sd, "backbone.0.0.weight")[1], _shape(sd, "backbone.0.0.weight")[0]
    layers = _count(sd, "backbone.{}.0.weight")
    if layers < 3:
        raise CheckpointError("ECBSRET needs a first conv, a last conv and a clip conv")
    out = _shape(sd, f"backbone.{layers - 2}.0.weight")[0]
    scale, _ = _scale_and_extra(out, colors, "the last conv")
    feat = width - (colors + 1)
    if feat < 1:
        raise CheckpointError(f"ECBSRET width {width} leaves no real channels for {colors} colours")
    return _stack_hparams(
        colors,
        scale,
        layers - 3,
        feat,
        act_type=_act_type(sd, "backbone.0.1.weight"),
        num_extra=None,
        align=_align_for(out, colors, scale),
    )


def _abpn_blocks(sd: StateDict) -> int:
    n = 0
    while f"backbone.{2 + n}.0.weight" in sd:
        n += 1
    return n


def _abpn_hparams(sd: StateDict) -> dict[str, Any]:
    colors, feat = _shape(sd, "backbone.0.weight")[1], _shape(sd, "backbone.0.weight")[0]
    blocks = _abpn_blocks(sd)
    out = _shape(sd, f"backbone.{2 + blocks}.weight")[0]
    return {
        "num_feat": feat,
        "num_block": blocks,
        "scale": _exact_scale(out, colors, "the first tail conv"),
        "num_in_ch": colors,
    }


def _abpn_et_hparams(sd: StateDict) -> dict[str, Any]:
    colors, width = _shape(sd, "backbone.0.weight")[1], _shape(sd, "backbone.0.weight")[0]
    blocks = _abpn_blocks(sd)
    tail = _shape(sd, f"backbone.{2 + blocks}.weight")[0]
    out = _shape(sd, f"backbone.{4 + blocks}.weight")[0]
    scale, _ = _scale_and_extra(out, colors, "the last 3×3 conv")
    authors_tail = colors * scale**2 + colors + (0 if scale == 3 else 1)
    feat = width - (colors + 1)
    if feat < 1:
        raise CheckpointError(f"ABPN_ET width {width} leaves no real channels for {colors} colours")
    return {
        "num_feat": feat,
        "num_block": blocks,
        "scale": scale,
        "num_in_ch": colors,
        "num_extra": None,
        "tail_feat": None if tail == authors_tail else tail,
        "align": _align_for(out, colors, scale),
    }


def _espcn_hparams(sd: StateDict) -> dict[str, Any]:
    colors, feat1 = _shape(sd, "conv1.weight")[1], _shape(sd, "conv1.weight")[0]
    return {
        "colors": colors,
        "upscale": _exact_scale(_shape(sd, "conv3.weight")[0], colors, "conv3"),
        "feat1": feat1,
        "feat2": _shape(sd, "conv2.weight")[0],
    }


def _fsrcnn_hparams(sd: StateDict) -> dict[str, Any]:
    colors, d = _shape(sd, "first_part.0.weight")[1], _shape(sd, "first_part.0.weight")[0]
    convs = sum(1 for k in sd if re.fullmatch(r"mid_part\.\d+\.bias", k))
    return {
        "upscale": None,  # not stored in the weights; filled in by the caller
        "colors": colors,
        "d": d,
        "s": _shape(sd, "mid_part.0.weight")[0],
        "m": convs - 2,
    }


HPARAM_READERS: dict[str, Callable[[StateDict], dict[str, Any]]] = {
    "ETDS": _dual_stream_hparams,
    "ETDSAblationResidual": _dual_stream_hparams,
    "ETDSAblationAdvancedResidual": _dual_stream_hparams,
    "ETDSOnlyET": _only_et_hparams,
    "ETDSForInference": _etds_inference_hparams,
    "Plain": _plain_hparams,
    "ECBSR": _ecbsr_hparams,
    "ECBSRT": _ecbsrt_hparams,
    "ECBSRET": _ecbsret_hparams,
    "ABPN": _abpn_hparams,
    "ABPN_ET": _abpn_et_hparams,
    "ESPCN": _espcn_hparams,
    "FSRCNN": _fsrcnn_hparams,
}


def _classify(sd: StateDict) -> tuple[str, str]:
    """``(arch, rule)`` from the key set and a few shapes (see the module docstring)."""
    keys = set(sd)
    if "conv_first.weight" in keys:
        if "conv_clip.weight" in keys:
            return "ETDSForInference", "has conv_clip (the merged ETDS inference form)"
        if "conv_residual_first.weight" in keys:
            if "backbone_convs.0.weight" not in keys:
                return "ETDS", "dual stream without blocks (ETDS and its ablations coincide)"
            if "advanced_residual_convs.0.weight" in keys:
                return "ETDSAblationAdvancedResidual", "residual stream with couplings both ways"
            if "add_residual_convs.0.weight" in keys:
                return "ETDS", "residual stream with residual→backbone couplings"
            return "ETDSAblationResidual", "residual stream without couplings"
        colors, width = sd["conv_first.weight"].shape[1], sd["conv_first.weight"].shape[0]
        if width % 4 != 0 and (width + colors) % 4 == 0:
            return "ETDSOnlyET", (
                f"single stream of width {width} (+{colors} colours = {width + colors}, a multiple "
                "of 4): the ETDSOnlyET convention; pass arch='Plain' if it is not"
            )
        return "Plain", (
            f"single stream of width {width} (not of the form 4k - {colors}): read as Plain; "
            "pass arch='ETDSOnlyET' if it is not"
        )
    if "backbone.0.conv3x3.weight" in keys:
        return "ECBSR", "edge-oriented blocks (conv3x3 + sequential branches)"
    if "backbone.0.0.weight" in keys:
        layers = _count(sd, "backbone.{}.0.weight")
        if sd[f"backbone.{layers - 1}.0.weight"].shape[-2:] == (1, 1):
            return "ECBSRET", "re-parameterized ECBSR ending in a 1×1 clip conv"
        return "ECBSRT", "re-parameterized ECBSR (one 3×3 conv per block)"
    if "backbone.0.weight" in keys:
        tail = 6 + _abpn_blocks(sd)
        clip = sd.get(f"backbone.{tail}.weight")
        if clip is not None and clip.shape[-2:] == (1, 1):
            return "ABPN_ET", "anchor-based plain net ending in a 1×1 clip conv"
        return "ABPN", "anchor-based plain net"
    if {"conv1.weight", "conv2.weight", "conv3.weight"} <= keys:
        return "ESPCN", "conv1/conv2/conv3"
    if {"first_part.0.weight", "last_part.weight"} <= keys:
        return "FSRCNN", "first_part/mid_part/last_part"
    sample = ", ".join(sorted(keys)[:4])
    raise CheckpointError(
        f"unknown architecture (keys {sample}, …); known: {', '.join(sorted(HPARAM_READERS))}"
    )


def _scale_from_name(name: str | None) -> int | None:
    if not name:
        return None
    match = re.search(r"(?:_|^)x(\d+)(?:[_.]|$)", Path(name).name)
    return int(match.group(1)) if match else None


def detect_architecture(
    state_dict: Mapping[str, torch.Tensor],
    *,
    arch: str | None = None,
    upscale: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    source_name: str | None = None,
) -> DetectedArchitecture:
    """Recognise the architecture and hyper-parameters of ``state_dict``.

    ``arch`` forces the family (its hyper-parameters are still read from the shapes);
    ``metadata`` (from our files) gives both outright; ``upscale`` fills in what the weights
    cannot tell (FSRCNN); ``source_name`` (a file name) is the last resort for that.
    """
    sd = dict(state_dict)
    if not sd:
        raise CheckpointError("empty state dict")
    notes: list[str] = []
    if arch is None and metadata and "arch" in metadata:
        name = str(metadata["arch"])
        if name not in ARCHITECTURES:
            raise CheckpointError(f"metadata names unknown architecture {name!r}")
        return DetectedArchitecture(name, dict(metadata.get("hparams", {})), "recorded in file")
    if arch is not None:
        if arch not in HPARAM_READERS:
            known = ", ".join(sorted(HPARAM_READERS))
            raise CheckpointError(f"unknown architecture {arch!r}; known: {known}")
        rule = "given by the caller"
    else:
        arch, rule = _classify(sd)
    try:
        hparams = HPARAM_READERS[arch](sd)
    except KeyError as error:
        raise CheckpointError(f"not a {arch} state dict: missing key {error}") from None
    except (IndexError, ZeroDivisionError) as error:
        raise CheckpointError(f"not a {arch} state dict: unexpected shapes ({error})") from None
    except CheckpointError as error:
        raise CheckpointError(f"not a {arch} state dict: {error}") from None
    if arch == "FSRCNN":
        scale = upscale if upscale is not None else _scale_from_name(source_name)
        if scale is None:
            raise CheckpointError(
                "FSRCNN's scale (the stride of its transposed conv) is not stored in its weights; "
                "pass upscale= or name the file …_x<scale>.pth"
            )
        hparams["upscale"] = int(scale)
        notes.append("upscale given" if upscale is not None else "upscale from the file name")
    elif upscale is not None:
        key = "scale" if "scale" in hparams else "upscale"
        if hparams[key] != upscale:
            raise CheckpointError(f"the weights are ×{hparams[key]}, not ×{upscale}")
    return DetectedArchitecture(arch, hparams, rule, tuple(notes))


# --------------------------------------------------------------------------- loading


#: No super-resolution model of this family comes near this many weights in one tensor.
MAX_TENSOR_ELEMENTS = 2**28


def _check_sizes(sd: StateDict) -> None:
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


def _check_finite(sd: StateDict) -> None:
    for key, tensor in sd.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"non-finite weights (NaN/Inf): {bad} value(s) in {key!r}")


def _load_strict(model: nn.Module, sd: StateDict, arch: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"keys do not match {arch}{model.extra_repr() and '(' + model.extra_repr() + ')'}: "
            f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''}"
        )
    for key, tensor in sd.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"shape mismatch for {arch} at {key!r}: file has {tuple(tensor.shape)}, "
                f"the architecture needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(sd, strict=True)


def from_state_dict(
    state_dict: Mapping[str, Any],
    *,
    arch: str | None = None,
    upscale: int | None = None,
    source_name: str | None = None,
) -> ReferenceModel:
    """Build the detected architecture, load ``state_dict`` strictly, return it in eval mode.

    ``state_dict`` may also be one of the wrappers listed in the module docstring.
    """
    sd, metadata = unwrap_state_dict(state_dict)
    _check_sizes(sd)
    _check_finite(sd)
    detected = detect_architecture(
        sd, arch=arch, upscale=upscale, metadata=metadata, source_name=source_name
    )
    try:
        model = ARCHITECTURES[detected.arch](**detected.hparams)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"cannot build {detected.arch} from {detected.hparams}: {_first_line(error)}"
        ) from None
    _load_strict(model, sd, detected.arch)
    return model.eval()


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    arch: str | None = None,
    upscale: int | None = None,
) -> ReferenceModel:
    """Read ``path`` safely (weights only), detect the architecture, return it in eval mode."""
    sd, metadata = load_state_dict_file(path, map_location=map_location)
    wrapped: dict[str, Any] = {"params": sd, METADATA_KEY: metadata} if metadata else sd
    try:
        return from_state_dict(wrapped, arch=arch, upscale=upscale, source_name=str(path))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


def parameter_count(model: nn.Module) -> int:
    """Number of scalars in ``model.parameters()`` (frozen ones such as ECB masks included)."""
    return sum(p.numel() for p in model.parameters())


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`et.atomic_file.atomic_path`: readers never
    see a half-written file, and a failure leaves ``path`` as it was."""
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def save_checkpoint(
    model: ReferenceModel, path: str | os.PathLike[str], *, metadata: bool = True
) -> None:
    """Write ``model`` atomically: ``{"params": sd, "etds": {arch, hparams}}`` or a bare
    state dict (``metadata=False``, the authors' own layout). Both load in BasicSR."""
    path = Path(path)
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload: Any = sd
    if metadata:
        payload = {"params": sd, METADATA_KEY: {"arch": model.arch, "hparams": model.hparams}}
    atomic_torch_save(payload, path)
