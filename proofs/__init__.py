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

_PROOF_PACKAGES = ("proofs.rules", "proofs.corollaries")


def discover() -> dict[str, Proof]:
    """Import all proof modules (one per rule in :mod:`proofs.rules`, one per whole-model
    conversion in :mod:`proofs.corollaries`) and return the registry (rule id → proof)."""
    for package_name in _PROOF_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
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
