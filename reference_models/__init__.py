"""Reference super-resolution models (the ETDS authors' architectures) and safe loading.

    from reference_models import load_checkpoint, from_state_dict, build_model
    model = load_checkpoint("ETDS_M4C32_x4.pth")   # eval mode, architecture detected
    model = build_model("ETDS", num_in_ch=3, num_out_ch=3, upscale=4, num_block=4,
                        num_feat=32, num_residual_feat=3)

Class and parameter names follow the authors' code so their state dicts load with
``strict=True`` and ours load in their code.
"""

from reference_models.architectures.abpn import ABPN, ABPN_ET
from reference_models.architectures.base import ARCHITECTURES, ReferenceModel, build_model
from reference_models.architectures.bicubic import Bicubic
from reference_models.architectures.ecbsr import ECB, ECBSR, ECBSRET, ECBSRT, SeqConv3x3
from reference_models.architectures.espcn import ESPCN
from reference_models.architectures.etds import (
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
)
from reference_models.architectures.fsrcnn import FSRCNN
from reference_models.architectures.plain import Plain
from reference_models.checkpoints import (
    CheckpointError,
    DetectedArchitecture,
    detect_architecture,
    from_state_dict,
    load_checkpoint,
    load_state_dict_file,
    parameter_count,
    save_checkpoint,
)

__all__ = [
    "ABPN",
    "ABPN_ET",
    "ARCHITECTURES",
    "ECB",
    "ECBSR",
    "ECBSRET",
    "ECBSRT",
    "ESPCN",
    "ETDS",
    "FSRCNN",
    "Bicubic",
    "CheckpointError",
    "DetectedArchitecture",
    "ETDSAblationAdvancedResidual",
    "ETDSAblationResidual",
    "ETDSForInference",
    "ETDSOnlyET",
    "Plain",
    "ReferenceModel",
    "SeqConv3x3",
    "build_model",
    "detect_architecture",
    "from_state_dict",
    "load_checkpoint",
    "load_state_dict_file",
    "parameter_count",
    "save_checkpoint",
]
