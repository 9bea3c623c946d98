"""A run's records on rank 0: ``config.yml``, ``train.log`` and optional TensorBoard scalars."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from reference_models.training.config import Config, dump_config, get

log = logging.getLogger("etds.train")


class RunLog:
    """Opened when a run starts (writes ``config.yml``, attaches ``train.log`` to :data:`log`,
    opens TensorBoard when ``logger.use_tb_logger`` and it is installed); :meth:`close` ends it."""

    def __init__(self, out_dir: Path, config: Config) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yml").write_text(dump_config(config), encoding="utf-8")
        handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        self._handler = handler
        self._tensorboard: Any = None
        if get(config, "logger.use_tb_logger", True):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                pass
            else:
                self._tensorboard = SummaryWriter(str(out_dir / "tb"))

    def record(self, tag: str, value: float, iteration: int) -> None:
        """One scalar at ``iteration`` (TensorBoard only)."""
        if self._tensorboard is not None:
            self._tensorboard.add_scalar(tag, value, iteration)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        log.removeHandler(self._handler)
        self._handler.close()
