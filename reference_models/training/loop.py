"""The trainer: the authors' optimisation of a reference model, on one process or several.

Per iteration ``i = 1 … total_iter`` (BasicSR's counting):

1. for ``model_type: ETDSModel``, the residual stream (every parameter whose name contains
   ``residual``) is trainable only when ``i ≥ fixed_residual_model_iters`` — exactly the authors'
   switch, which freezes at iteration 1 and unfreezes when the counter *equals* the setting, so a
   setting of 0 or 1 keeps the stream frozen for the whole run (their ``normal_loss`` ablation
   was released with the nearest-upsampling residual stream untouched, which shows it);
2. a batch of LR/GT patches (:mod:`reference_models.training.data`);
3. the loss: ``w · L1(y, GT)`` for single-output models; for ``ETDSModel`` with outputs
   ``(total, low_frequency)``: ``w · L1(total, GT) + α · w · L1(low_frequency, GT)`` with
   ``α = train.interpolation_loss_weight`` (0.5 in the recipe) — Eq. 15 of the paper;
4. Adam step (lr 5e-4, betas 0.9/0.99, no weight decay in the recipe), then the schedule step
   (the authors step the schedule just before the optimizer, so their rate changes one
   iteration earlier at a milestone; with the released runs' single milestone at the last
   iteration the rate is constant either way);
5. the EMA update ``p̄ ← d·p̄ + (1−d)·p`` (``train.ema_decay``, 0.999).

Every ``val.val_freq`` iterations (and at the end) rank 0 scores the EMA weights (or the model
without EMA) on ``datasets.val`` with the evaluation protocol; every
``logger.save_checkpoint_freq`` iterations it writes a checkpoint holding the model, the EMA,
the optimizer, the schedule, the iteration, the sampler state and every RNG state, from which a
resumed run continues bit for bit. ``DIR/final.pth`` holds the EMA weights (or the model's) in
the authors' parameter names, as ``{"params": state_dict, "etds": {"arch", "hparams"}}`` (what
:func:`reference_models.save_checkpoint` writes and BasicSR's loader reads): a bare state dict
cannot tell FSRCNN's scale or ETDSOnlyET from Plain.

Keys beyond the authors' vocabulary: ``device`` (``auto``, ``cpu`` or ``cuda``),
``val.val_at_start`` (also score the initial weights), ``datasets.val.dataroot`` (HR images or
a ``GTmod12/`` + ``LRbicx{s}/`` folder) and ``datasets.train.lq_cache_dir``.

Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` (rebuilt when the set of
trainable parameters changes, since DDP fixes it at construction) and each process draws its
own share of every epoch; the batch size is per process, as in the authors' configs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reference_models import build_model, save_checkpoint
from reference_models.checkpoints import atomic_torch_save
from reference_models.training import distributed
from reference_models.training.builders import build_optimizer, build_train_data, build_val_data
from reference_models.training.config import Config, get
from reference_models.training.data import make_train_loader
from reference_models.training.ema import ModelEMA
from reference_models.training.loss import PixelLoss
from reference_models.training.residual_switch import is_residual_parameter, residual_trainable
from reference_models.training.results import TrainResult, Validation
from reference_models.training.resume_state import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    rng_state,
    set_rng_state,
)
from reference_models.training.resume_state import latest_checkpoint as latest_checkpoint
from reference_models.training.run_log import RunLog, log
from reference_models.training.schedules import build_scheduler
from reference_models.training.timing import RunTimer, warmup_for


def schedule_of(config: Config) -> tuple[int, int, int]:
    """``(total_iter, val_freq, save_freq)`` of a config (0: never)."""
    return (
        int(float(get(config, "train.total_iter", 0) or 0)),
        int(float(get(config, "val.val_freq", 0) or 0)),
        int(float(get(config, "logger.save_checkpoint_freq", 0) or 0)),
    )


class Trainer:
    """One training run described by a config; :meth:`run` does it."""

    def __init__(
        self,
        config: Config,
        out_dir: str | Path,
        *,
        resume: str | Path | None = None,
        progress: bool = True,
        recipe: Config | None = None,
    ) -> None:
        self.config = config
        self.recipe = recipe if recipe is not None else config
        self.out_dir = Path(out_dir)
        self.progress = progress
        device_name = get(config, "device", None) or "auto"
        if device_name not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={device_name!r} must be auto, cpu or cuda")
        self.info = distributed.setup(None if device_name == "auto" else device_name)
        self.device = self.info.device
        self.seed = int(get(config, "manual_seed", 10))
        train_opt = config.get("train") or {}
        self.total_iter = int(train_opt.get("total_iter", 0))
        if self.total_iter < 1:
            raise ValueError("train.total_iter must be a positive integer")
        self.dual_stream = config.get("model_type", "IRModel") == "ETDSModel"
        self.fixed_residual_iters = (
            int(train_opt.get("fixed_residual_model_iters", 0)) if self.dual_stream else 0
        )
        self.loss = PixelLoss(train_opt, self.dual_stream)

        torch.manual_seed(self.seed)  # identical initial weights on every process
        self.model = self._build_model().to(self.device)
        self.model.train()
        decay = float(train_opt.get("ema_decay", 0.0) or 0.0)
        self.ema = ModelEMA(self.model, decay) if decay > 0 else None
        self.optimizer = build_optimizer(self.model, train_opt.get("optim_g") or {})
        self.scheduler = build_scheduler(self.optimizer, train_opt.get("scheduler") or {})
        self.iteration = 0
        self.wrapped: nn.Module = self.model
        self._trainable_residual: bool | None = None
        self._run_log: RunLog | None = None
        self._resume_rng: dict[str, Any] | None = None
        self._saved_at = -1

        if resume is not None:
            self._load_checkpoint(Path(resume))
        self.dataset, self.sampler = build_train_data(
            config,
            seed=self.seed,
            rank=self.info.rank,
            world_size=self.info.world_size,
            start_iteration=self.iteration,
        )
        self.val_dataset = build_val_data(config) if self.info.is_main else None

    # -- construction -------------------------------------------------------------------------

    def _build_model(self) -> nn.Module:
        spec = dict(self.config.get("network_g") or {})
        arch = spec.pop("type", None)
        if arch is None:
            raise ValueError("network_g.type must name an architecture")
        return build_model(arch, **spec)

    # -- the residual-stream switch -----------------------------------------------------------

    def apply_residual_switch(self, iteration: int) -> None:
        """Freeze or release the residual stream as it is at ``iteration`` (1-based)."""
        trainable = not self.dual_stream or residual_trainable(iteration, self.fixed_residual_iters)
        if trainable == self._trainable_residual:
            return
        for name, parameter in self.model.named_parameters():
            if is_residual_parameter(name):
                parameter.requires_grad_(trainable)
        self._trainable_residual = trainable
        self._wrap()

    def _wrap(self) -> None:
        if not self.info.distributed:
            self.wrapped = self.model
            return
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.wrapped = DistributedDataParallel(self.model, device_ids=device_ids)

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "network_g": self.model.state_dict(),
            "network_g_ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict() | {"start_iteration": self.iteration},
            "rng": rng_state(),
            "config": self.config,
        }

    def save_checkpoint(self) -> Path:
        path = checkpoint_path(self.out_dir, self.iteration)
        if self._saved_at != self.iteration:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(self._checkpoint(), path)
            self._saved_at = self.iteration
        return path

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a training checkpoint of etds train")
        try:
            self.model.load_state_dict(state["network_g"])
            if self.ema is not None:
                if state["network_g_ema"] is None:
                    raise ValueError(f"{path} has no EMA weights but the config asks for EMA")
                self.ema.load_state_dict(state["network_g_ema"])
        except RuntimeError as error:  # another architecture than network_g describes
            first = str(error).strip().splitlines()[0]
            raise ValueError(f"{path} does not fit network_g: {first}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        self._resume_rng = state["rng"]

    def released_model(self) -> nn.Module:
        """The network that is validated and released: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    # -- validation and logging ---------------------------------------------------------------

    def validate(self) -> Validation | None:
        if self.val_dataset is None:
            return None
        from reference_models.evaluation.evaluate import evaluate_dataset

        network = self.released_model()
        was_training = network.training
        network.eval()
        try:
            result = evaluate_dataset(network, self.val_dataset)
        finally:
            network.train(was_training)
        return Validation(self.iteration, result.name, result.psnr, result.ssim)

    def _record(self, tag: str, value: float) -> None:
        if self._run_log is not None:
            self._run_log.record(tag, value, self.iteration)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        main = self.info.is_main
        start = self.iteration
        result = TrainResult(self.out_dir, None, self.total_iter, start, 0.0)
        if main:
            self._run_log = RunLog(self.out_dir, self.config)
            log.info(
                "start %s at iteration %d of %d on %d process(es), device %s",
                self.config.get("name", "run"),
                start,
                self.total_iter,
                self.info.world_size,
                self.device,
            )
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
        val_opt = self.config.get("val") or {}
        _, val_freq, save_freq = schedule_of(self.config)
        print_freq = max(1, int(float(get(self.config, "logger.print_freq", 100))))
        opt = get(self.config, "datasets.train")
        workers = int(opt.get("num_worker_per_gpu", 0) or 0)
        loader = make_train_loader(
            self.dataset,
            self.sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        bar = None
        if main and self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_iter, initial=start, unit="it", dynamic_ncols=True)
        timer = RunTimer(self.device, warmup_for(self.total_iter - start))
        if main and val_opt.get("val_at_start") and start == 0:
            with timer.phase("validation"):
                self._report_validation(result)
        began = time.perf_counter()
        try:
            while self.iteration < self.total_iter:
                self.iteration += 1
                self.apply_residual_switch(self.iteration)
                with timer.data_wait():
                    batch = next(batches)
                loss = self.train_step(batch["lq"], batch["gt"])
                timer.step_finished()
                at_end = self.iteration == self.total_iter
                # Reading the loss waits for the device: only every print_freq iterations.
                if self.iteration % print_freq == 0 or at_end:
                    mean_loss = float(distributed.mean_over_processes(loss.detach(), self.info))
                    if not math.isfinite(mean_loss):
                        raise FloatingPointError(f"loss {mean_loss} at iteration {self.iteration}")
                if bar is not None:
                    bar.update(1)
                if main and (self.iteration % print_freq == 0 or at_end):
                    result.losses.append((self.iteration, mean_loss))
                    if bar is not None:
                        bar.set_postfix(loss=f"{mean_loss:.5f}")
                    lr = self.optimizer.param_groups[0]["lr"]
                    log.info("iter %d lr %.3e loss %.6f", self.iteration, lr, mean_loss)
                    self._record("train/loss", mean_loss)
                    self._record("train/lr", lr)
                if main:
                    if val_freq and (self.iteration % val_freq == 0 or at_end):
                        with timer.phase("validation"):
                            self._report_validation(result)
                    if save_freq and self.iteration % save_freq == 0:
                        with timer.phase("checkpoint"):
                            self.save_checkpoint()
                if save_freq and self.iteration % save_freq == 0:
                    distributed.barrier(self.info)  # nobody runs ahead of a checkpoint
        finally:
            if bar is not None:
                bar.close()
            del batches
        result.seconds = time.perf_counter() - began
        result.timing = timer.finish()
        if result.timing.timed_iterations > 0:
            result.projection = result.timing.project(*schedule_of(self.recipe))
        if main:
            self.save_checkpoint()
            final = self.out_dir / "final.pth"
            save_checkpoint(self.released_model(), final, metadata=True)
            result.final_path = final
            log.info(
                "done: %d iterations in %.1f s; wrote %s",
                self.iteration - start,
                result.seconds,
                final,
            )
            self._log_timing(result)
            self._run_log.close()
        distributed.barrier(self.info)
        return result

    def train_step(self, lq: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a batch (steps 3–5 of the module docstring); returns the
        loss, still on the device (reading it would wait for the device)."""
        lq = lq.to(self.device, non_blocking=True)
        gt = gt.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.wrapped(lq), gt)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss

    def _log_timing(self, result: TrainResult) -> None:
        if result.timing is None or result.projection is None:
            log.info("timing: the run was too short to time steady-state iterations")
            return
        log.info("timing: %s", result.timing.describe())
        log.info("timing: at this rate, %s", result.projection.describe())

    def _report_validation(self, result: TrainResult) -> None:
        validation = self.validate()
        if validation is None:
            return
        result.validations.append(validation)
        log.info(
            "validation iter %d %s psnr %.4f ssim %.4f",
            validation.iteration,
            validation.dataset,
            validation.psnr,
            validation.ssim,
        )
        self._record(f"metrics/{validation.dataset}/psnr", validation.psnr)
        self._record(f"metrics/{validation.dataset}/ssim", validation.ssim)


def train(
    config: Config,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    recipe: Config | None = None,
) -> TrainResult:
    """Train the model described by ``config`` into ``out_dir`` (see the module docstring).

    ``recipe`` is the schedule the closing timing line projects to (default ``config``): pass
    the config as written when ``config`` shortens it for a timing run.
    """
    try:
        trainer = Trainer(config, out_dir, resume=resume, progress=progress, recipe=recipe)
    except BaseException:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        raise
    try:
        return trainer.run()
    finally:
        distributed.teardown(trainer.info)
