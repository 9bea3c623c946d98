"""Sympy derivations of every rule: exact, symbolic, and tied to the code in :mod:`et`.

``discover()`` imports every proof module; ``registered_proofs()`` maps rule ids to proofs.
"""

from __future__ import annotations

import importlib
import pkgutil

from proofs.contract import (
    Derivation,
    Proof,
    ProofFailure,
    ProofResult,
    register_proof,
    registered_proofs,
)

_NOT_PROOFS = frozenset({"contract", "symbolic_ops", "appendix"})


def discover() -> dict[str, Proof]:
    """Import all proof modules and return the registry (rule id → proof)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_PROOFS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return registered_proofs()


__all__ = [
    "Derivation",
    "Proof",
    "ProofFailure",
    "ProofResult",
    "discover",
    "register_proof",
    "registered_proofs",
]
