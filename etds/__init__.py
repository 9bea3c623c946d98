"""The ``etds`` application: the command line on top of the rule library and the models.

Layers, lowest first: :mod:`et` (rules, checker) → :mod:`proofs` (sympy derivations) and
:mod:`reference_models` (architectures → conversions → evaluation / deploy / training) →
:mod:`etds` (this package: the ``etds`` command).
"""
