"""The reference architectures, one model family per module, with the authors' parameter names.

Importing the package registers every family in
:data:`~reference_models.architectures.base.ARCHITECTURES` (each class also reads itself back
from a state dict: see :mod:`reference_models.architectures.state_dict`).
"""

from reference_models.architectures import abpn, bicubic, ecbsr, espcn, etds, fsrcnn, plain

__all__ = ["abpn", "bicubic", "ecbsr", "espcn", "etds", "fsrcnn", "plain"]
