"""Hypothesis strategies for whole-model conversion tests: source models with drawn sizes and
weights, and the clamped-output comparison every conversion test uses.

Weight profiles (never vacuous: biases and PReLU slopes are never zero, slopes can be negative):

* ``trained``: convolution weights ~ N(0, 1/fan_in), biases ~ N(0, 0.05²), PReLU slopes in
  [-0.3, 0.6] — the magnitudes of the authors' checkpoints, so outputs stay in a range where
  the clamp is mostly inactive and every channel matters;
* ``random``: weights ~ N(0, 1), biases ~ N(0, 1): activations grow by ~√fan_in per layer,
  which stresses float error and the clamp (float64 only).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import nn

from et.testing import first_output, probe_inputs
from reference_models import ABPN, ECBSR, ECBSRT, ETDS
from reference_models.architectures.ecbsr import SeqConv3x3

PROFILES = ("trained", "random")


def randomize_(model: nn.Module, *, seed: int, profile: str) -> nn.Module:
    """Overwrite every trainable parameter of ``model`` in place (fixed ECB masks are kept)."""
    generator = torch.Generator().manual_seed(seed)
    trained = profile == "trained"
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                shape, dtype = param.shape, param.dtype
                noise = torch.randn(shape, generator=generator, dtype=torch.float64)
                if isinstance(module, nn.PReLU):
                    value = torch.rand(shape, generator=generator, dtype=torch.float64) * 0.9 - 0.3
                elif param.dim() == 4 and not (isinstance(module, SeqConv3x3) and name == "scale"):
                    fan_in = shape[1] * shape[2] * shape[3]
                    value = noise / fan_in**0.5 if trained else noise
                else:  # biases and the ECB edge-branch scales
                    value = noise * (0.05 if trained else 1.0)
                    value = value + torch.sign(value) * 0.01 + (value == 0) * 0.02
                param.copy_(value.to(dtype))
    return model.eval()


@st.composite
def etds_models(draw: st.DrawFn, cls: type = ETDS, *, dtype: torch.dtype = torch.float64):
    """A dual-stream ETDS-family model (``cls``) with drawn sizes and weights."""
    colors = draw(st.sampled_from([1, 3]))
    scale = draw(st.sampled_from([2, 3, 4]))
    blocks = draw(st.integers(1, 8))
    residual = draw(st.integers(colors, colors + 2))
    backbone = draw(st.integers(1, 6))
    model = cls(colors, colors, scale, blocks, backbone + residual, residual).to(dtype)
    seed = draw(st.integers(0, 2**31 - 1))
    return randomize_(model, seed=seed, profile=draw(st.sampled_from(PROFILES)))


@st.composite
def abpn_models(draw: st.DrawFn, *, dtype: torch.dtype = torch.float64, profile: str | None = None):
    colors = draw(st.sampled_from([1, 3]))
    model = ABPN(
        num_feat=draw(st.integers(1, 8)),
        num_block=draw(st.integers(1, 8)),
        scale=draw(st.sampled_from([2, 3, 4])),
        num_in_ch=colors,
    ).to(dtype)
    chosen = profile or draw(st.sampled_from(PROFILES))
    return randomize_(model, seed=draw(st.integers(0, 2**31 - 1)), profile=chosen)


@st.composite
def ecbsr_models(
    draw: st.DrawFn,
    cls: type = ECBSR,
    *,
    dtype: torch.dtype = torch.float64,
    profile: str | None = None,
    act_types: tuple[str, ...] = ("prelu", "relu"),
    with_idt: tuple[int, ...] = (0,),
):
    """ECBSR (training form) or ECBSRT with drawn sizes, activation and weights (ECBSR: and
    ``with_idt`` drawn from ``with_idt``)."""
    colors = draw(st.sampled_from([1, 3]))
    extra = {"with_idt": draw(st.sampled_from(with_idt))} if cls is ECBSR else {}
    model = cls(
        **extra,
        num_in_ch=colors,
        num_out_ch=colors,
        upscale=draw(st.sampled_from([2, 3, 4])),
        num_block=draw(st.integers(1, 8)),
        num_feat=draw(st.integers(1, 8)),
        act_type=draw(st.sampled_from(act_types)),
    ).to(dtype)
    chosen = profile or draw(st.sampled_from(PROFILES))
    return randomize_(model, seed=draw(st.integers(0, 2**31 - 1)), profile=chosen)


def ecbsrt_models(**kwargs) -> st.SearchStrategy:
    return ecbsr_models(ECBSRT, **kwargs)


def unit_batch(
    colors: int, height: int, width: int, high: float, seed: int, dtype: torch.dtype
) -> torch.Tensor:
    """:data:`UNIT_SAMPLES` images in ``[0, high]``: the seven structured probes as ``seed``
    draws them (order, offsets, grey levels: :mod:`et.probes`), then noise from ``seed``."""
    shape = (colors, height, width)
    batch = probe_inputs(shape, domain=(0.0, high), samples=UNIT_SAMPLES, seed=seed)
    return batch.to(dtype)


#: seven structured probes and two noise images per drawn batch
UNIT_SAMPLES = 9


@st.composite
def unit_images(
    draw: st.DrawFn,
    colors: int,
    *,
    dtype: torch.dtype = torch.float64,
    highs: tuple[float, ...] = (1.0, 1.0, 255.0),
):
    """Small batches in [0, high] with ``high`` drawn from ``highs`` (images in [0, 1] and
    ×255), odd and non-square sizes too: :func:`unit_batch` of a drawn seed."""
    height, width = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    high = draw(st.sampled_from(highs))
    return unit_batch(colors, height, width, high, draw(st.integers(0, 2**31 - 1)), dtype)


def clamped_gap(original: nn.Module, converted: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(max |clamp(original(x)) − converted(x)|, max |original(x)|)`` without gradients."""
    with torch.no_grad():
        raw = first_output(original(x))
        got = first_output(converted(x))
    assert got.shape == raw.shape, (tuple(got.shape), tuple(raw.shape))
    return (raw.clamp(0, 1) - got).abs().max().item(), raw.abs().max().item()


def set5_lr_images(shared_dir, scale: int) -> list[torch.Tensor]:
    """Set5 downscaled by ``scale`` with PIL's bicubic: plain [0, 1] LR inputs (float32)."""
    from PIL import Image

    images = []
    for path in sorted((shared_dir / "data" / "Set5").glob("*.png")):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            small = rgb.resize((rgb.width // scale, rgb.height // scale), Image.BICUBIC)
            data = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8)
            pixels = data.reshape(small.height, small.width, 3).permute(2, 0, 1)
        images.append(pixels.unsqueeze(0).float() / 255)
    return images
