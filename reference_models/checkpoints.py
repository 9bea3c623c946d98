"""Safe checkpoint IO and architecture detection from a state dict alone.

Files are read with ``torch.load(path, weights_only=True)`` only, so a pickle that would run
code is refused before anything in it executes. Every failure becomes a
:class:`CheckpointError` (a ``ValueError``) with one line that says what is wrong.

Wrappers unwrapped: ``{"params_ema": sd}`` (preferred, BasicSR's EMA weights), ``{"params": sd}``,
``{"state_dict": sd}``, ``{"model": sd}``, nested up to 3 levels, and a ``module.`` prefix on
every key (DataParallel). Our own files (:func:`save_checkpoint`) are ``{"params": sd, "etds":
{"arch": name, "hparams": {...}}}``: BasicSR's ``load_network`` reads them unchanged, and the
recorded architecture wins over detection. Training checkpoints of ``etds train``
(``format: etds-train-v1``) give their EMA weights (else the model's) and ``network_g``.

Detection asks each class in :data:`DETECTABLE` whether it recognises the key set
(:meth:`~reference_models.architectures.base.ReferenceModel.detection_rule`, mutually exclusive
rules) and reads its hyper-parameters from the shapes
(:meth:`~reference_models.architectures.base.ReferenceModel.hyperparameters_from_state_dict`).
What no shape shows is never guessed where it changes the function: FSRCNN's scale comes from
``upscale=``, our metadata or a ``_x<s>`` in the file name; a class's
:attr:`~reference_models.architectures.base.ReferenceModel.UNSEEN_HPARAMS` (ECBSR's
``with_idt``) are reported as unknown by :func:`detect_architecture` and must be given
(``hparams=``, ``--hparam KEY=VALUE``) before :func:`from_state_dict` builds the model.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from et.atomic_file import atomic_path
from reference_models.architectures.base import ARCHITECTURES, ReferenceModel
from reference_models.architectures.base import parameter_count as parameter_count  # re-export
from reference_models.architectures.state_dict import (
    CheckpointError,
    StateDict,
    check_finite,
    check_tensor_sizes,
)

#: the classes a state dict can be recognised as: those with a detection rule (the rules are
#: mutually exclusive, so the order does not matter)
DETECTABLE: dict[str, type[ReferenceModel]] = {
    name: cls
    for name, cls in sorted(ARCHITECTURES.items())
    if cls.detection_rule.__func__ is not ReferenceModel.detection_rule.__func__
}

#: wrapper keys, in order of preference
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "network")
#: the key under which our files record the architecture
METADATA_KEY = "etds"
#: the ``format`` entry of the training checkpoints ``etds train`` writes
TRAINING_CHECKPOINT_FORMAT = "etds-train-v1"


@dataclass(frozen=True)
class DetectedArchitecture:
    """What a state dict was recognised as, and why; ``unknown``: hyper-parameters that change
    the function but that neither the weights nor the caller told (name -> what they mean)."""

    arch: str
    hparams: dict[str, Any]
    rule: str
    notes: tuple[str, ...] = field(default=())
    unknown: dict[str, str] = field(default_factory=dict)


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


def _training_checkpoint(obj: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The released weights of an ``etds train`` checkpoint (the EMA copy when there is one,
    as training validates and releases it) and our metadata from its ``network_g`` config."""
    weights = obj.get("network_g_ema")
    if weights is None:
        weights = obj.get("network_g")
    config = obj.get("config")
    spec = config.get("network_g") if isinstance(config, Mapping) else None
    if not isinstance(spec, Mapping) or "type" not in spec:
        return weights, {}
    hparams = {k: v for k, v in spec.items() if k != "type"}
    return weights, {"arch": str(spec["type"]), "hparams": hparams}


def unwrap_state_dict(obj: Any) -> tuple[StateDict, dict[str, Any]]:
    """Find the state dict inside a loaded object; return it with our metadata (or ``{}``)."""
    metadata: dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == TRAINING_CHECKPOINT_FORMAT:
        obj, metadata = _training_checkpoint(obj)
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


# --------------------------------------------------------------------------- detection


def _classify(sd: StateDict) -> tuple[str, str]:
    """``(arch, rule)``: the one class in :data:`DETECTABLE` that recognises ``sd``."""
    for cls in DETECTABLE.values():
        rule = cls.detection_rule(sd)
        if rule is not None:
            return cls.__name__, rule
    sample = ", ".join(sorted(sd)[:4])
    raise CheckpointError(
        f"unknown architecture (keys {sample}, …); known: {', '.join(sorted(DETECTABLE))}"
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
    hparams: Mapping[str, Any] | None = None,
) -> DetectedArchitecture:
    """Recognise the architecture and hyper-parameters of ``state_dict``.

    ``arch`` forces the family (its hyper-parameters are still read from the shapes);
    ``metadata`` (from our files) gives both outright; ``upscale`` fills in what the weights
    cannot tell (FSRCNN); ``source_name`` (a file name) is the last resort for that;
    ``hparams`` are given hyper-parameters that override what was read (e.g. ECBSR's
    ``with_idt``). Unseen hyper-parameters nobody gave are listed in ``unknown``.
    """
    sd = dict(state_dict)
    if not sd:
        raise CheckpointError("empty state dict")
    given = dict(hparams or {})
    notes: list[str] = []
    if arch is None and metadata and "arch" in metadata:
        name = str(metadata["arch"])
        if name not in ARCHITECTURES:
            raise CheckpointError(f"metadata names unknown architecture {name!r}")
        # our files record every argument; one missing was the constructor's default then
        recorded = dict(metadata.get("hparams", {})) | given
        return DetectedArchitecture(name, recorded, "recorded in file")
    if arch is not None:
        if arch not in DETECTABLE:
            known = ", ".join(sorted(DETECTABLE))
            raise CheckpointError(f"unknown architecture {arch!r}; known: {known}")
        rule = "given by the caller"
    else:
        arch, rule = _classify(sd)
    cls = DETECTABLE[arch]
    try:
        read = cls.hyperparameters_from_state_dict(sd)
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
                "pass --scale (upscale=) or name the file …_x<scale>.pth"
            )
        read["upscale"] = int(scale)
        notes.append("upscale given" if upscale is not None else "upscale from the file name")
    elif upscale is not None:
        key = "scale" if "scale" in read else "upscale"
        if read[key] != upscale:
            raise CheckpointError(f"the weights are ×{read[key]}, not ×{upscale}")
    notes += [f"{key} given" for key in given]
    unknown = {k: v for k, v in cls.UNSEEN_HPARAMS.items() if k not in given}
    return DetectedArchitecture(arch, read | given, rule, tuple(notes), unknown)


def constructor_defaults(arch: str, names: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor's default values of ``names`` for ``arch`` (to count parameters)."""
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    return {name: parameters[name].default for name in names}


def unknown_hparams_message(detected: DetectedArchitecture) -> str:
    """One line naming the flags that would settle ``detected.unknown``."""
    flags = " and ".join(f"--hparam {k}=..." for k in detected.unknown)
    meaning = "; ".join(f"{k}: {v}" for k, v in detected.unknown.items())
    return (
        f"{detected.arch}'s {', '.join(detected.unknown)} is not stored in its weights and "
        f"changes the function; pass {flags} (hparams= in Python) ({meaning})"
    )


# --------------------------------------------------------------------------- loading


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
    hparams: Mapping[str, Any] | None = None,
) -> ReferenceModel:
    """Build the detected architecture, load ``state_dict`` strictly, return it in eval mode.

    ``state_dict`` may also be one of the wrappers listed in the module docstring. A
    hyper-parameter the weights cannot show (ECBSR's ``with_idt``) must come from our metadata
    or ``hparams``; otherwise a :class:`CheckpointError` names it.
    """
    sd, metadata = unwrap_state_dict(state_dict)
    check_tensor_sizes(sd)
    check_finite(sd)
    detected = detect_architecture(
        sd,
        arch=arch,
        upscale=upscale,
        metadata=metadata,
        source_name=source_name,
        hparams=hparams,
    )
    if detected.unknown:
        raise CheckpointError(unknown_hparams_message(detected))
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
    hparams: Mapping[str, Any] | None = None,
) -> ReferenceModel:
    """Read ``path`` safely (weights only), detect the architecture, return it in eval mode
    (``hparams``: what the weights cannot show, see :func:`from_state_dict`)."""
    sd, metadata = load_state_dict_file(path, map_location=map_location)
    wrapped: dict[str, Any] = {"params": sd, METADATA_KEY: metadata} if metadata else sd
    try:
        return from_state_dict(
            wrapped, arch=arch, upscale=upscale, source_name=str(path), hparams=hparams
        )
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`et.atomic_file.atomic_path`: readers never
    see a half-written file, and a failure leaves ``path`` as it was.

    The object is serialised in memory first: ``torch.save`` to a path names the zip records
    after the file, which would put the random temporary name into the bytes; from a buffer
    the records are always ``archive/…``, so equal objects give byte-identical files.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(buffer.getvalue())


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
