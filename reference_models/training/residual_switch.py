"""The authors' residual-stream switch of ``model_type: ETDSModel`` (step 1 of the trainer)."""

from __future__ import annotations

RESIDUAL_MARK = "residual"


def is_residual_parameter(name: str) -> bool:
    """The authors' rule for the residual stream: the parameter's name contains ``residual``."""
    return RESIDUAL_MARK in name


def residual_trainable(iteration: int, fixed_residual_model_iters: int) -> bool:
    """Whether the residual stream is updated at ``iteration`` (1-based), as the authors' switch
    behaves: frozen at iteration 1, released when the counter equals the setting."""
    return fixed_residual_model_iters > 1 and iteration >= fixed_residual_model_iters
