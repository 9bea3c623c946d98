"""Training the reference models with the authors' recipe (``etds train``).

    from reference_models.training import load_config, train
    config = load_config("configs/train_ETDS_M4C32_x4.yml", ["train.total_iter=30"])
    result = train(config, "runs/etds_m4c32_x4")     # result.final_path: the EMA weights

Modules: :mod:`.config` (YAML + overrides), :mod:`.data` (patches, augmentation, sampler),
:mod:`.ema`, :mod:`.schedules`, :mod:`.loop` (the trainer, with :mod:`.builders` (optimizer and
data from the config), :mod:`.loss` (Eq. 15), :mod:`.residual_switch`, :mod:`.resume_state`
(checkpoint paths and RNG state), :mod:`.run_log` and :mod:`.results`), :mod:`.distributed`
(torchrun),
:mod:`.subimages` (DIV2K sub-image extraction), :mod:`.timing` (where a run's time goes, and the
whole schedule projected from it).
"""

from reference_models.training.config import apply_override, load_config
from reference_models.training.loop import Trainer, train
from reference_models.training.results import TrainResult, Validation

__all__ = ["TrainResult", "Trainer", "Validation", "apply_override", "load_config", "train"]
