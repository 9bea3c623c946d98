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

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from et.testing import first_output
from reference_models import build_model, save_checkpoint
from reference_models.checkpoints import atomic_torch_save
from reference_models.training import distributed
from reference_models.training.config import Config, dump_config, get
from reference_models.training.data import PatchDataset, SeededBatchSampler, make_train_loader
from reference_models.training.data import paired_images as _paired_images
from reference_models.training.ema import ModelEMA
from reference_models.training.schedules import build_scheduler
from reference_models.training.timing import RunProjection, RunTimer, TimeBreakdown, warmup_for

CHECKPOINT_FORMAT = "etds-train-v1"
RESIDUAL_MARK = "residual"

log = logging.getLogger("etds.train")


@dataclass
class Validation:
    """Mean PSNR (dB) and SSIM of one validation pass."""

    iteration: int
    dataset: str
    psnr: float
    ssim: float


@dataclass
class TrainResult:
    """What a run produced (rank 0 fills the validations and the paths)."""

    out_dir: Path
    final_path: Path | None
    iterations: int
    start_iteration: int
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    timing: TimeBreakdown | None = None
    #: ``recipe``'s whole schedule at the measured rates (None: no steady-state iteration timed)
    projection: RunProjection | None = None


def is_residual_parameter(name: str) -> bool:
    """The authors' rule for the residual stream: the parameter's name contains ``residual``."""
    return RESIDUAL_MARK in name


def residual_trainable(iteration: int, fixed_residual_model_iters: int) -> bool:
    """Whether the residual stream is updated at ``iteration`` (1-based), as the authors' switch
    behaves: frozen at iteration 1, released when the counter equals the setting."""
    return fixed_residual_model_iters > 1 and iteration >= fixed_residual_model_iters


def _rng_state() -> dict[str, Any]:
    """Every global RNG, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def schedule_of(config: Config) -> tuple[int, int, int]:
    """``(total_iter, val_freq, save_freq)`` of a config (0: never)."""
    return (
        int(float(get(config, "train.total_iter", 0) or 0)),
        int(float(get(config, "val.val_freq", 0) or 0)),
        int(float(get(config, "logger.save_checkpoint_freq", 0) or 0)),
    )


def checkpoint_path(out_dir: Path, iteration: int) -> Path:
    return out_dir / "checkpoints" / f"iter_{iteration:08d}.pth"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint of the highest iteration in ``out_dir/checkpoints``, if any."""
    found = sorted((out_dir / "checkpoints").glob("iter_*.pth"))
    return found[-1] if found else None


class _Loss:
    """The pixel loss of the config (``train.losses`` or ``train.pixel_opt``) and Eq. 15."""

    def __init__(self, train_opt: Config, dual_stream: bool) -> None:
        specs = train_opt.get("losses")
        if specs is None and train_opt.get("pixel_opt") is not None:
            specs = {"pixel": train_opt["pixel_opt"]}
        if not specs:
            raise ValueError("train.losses (or train.pixel_opt) must name a pixel loss")
        self.terms: list[tuple[str, float, Callable[..., torch.Tensor], str]] = []
        for name, spec in specs.items():
            kind = spec.get("type", "L1Loss")
            functions = {"L1Loss": nn.functional.l1_loss, "MSELoss": nn.functional.mse_loss}
            if kind not in functions:
                raise ValueError(f"loss {name}: type {kind!r} is not one of {sorted(functions)}")
            weight = float(spec.get("loss_weight", 1.0))
            reduction = spec.get("reduction", "mean")
            self.terms.append((name, weight, functions[kind], reduction))
        self.dual_stream = dual_stream
        self.alpha = float(train_opt.get("interpolation_loss_weight", 0.5)) if dual_stream else 0.0

    def __call__(self, output: torch.Tensor | tuple[torch.Tensor, ...], gt: torch.Tensor):
        if self.dual_stream:
            if not isinstance(output, tuple | list) or len(output) != 2:
                raise ValueError("model_type ETDSModel needs a model returning (total, low)")
            total, low = output
        else:
            total, low = first_output(output), None
        loss = total.new_zeros(())
        for _, weight, function, reduction in self.terms:
            loss = loss + weight * function(total, gt, reduction=reduction)
            if low is not None:
                loss = loss + self.alpha * weight * function(low, gt, reduction=reduction)
        return loss


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
        self.loss = _Loss(train_opt, self.dual_stream)

        torch.manual_seed(self.seed)  # identical initial weights on every process
        self.model = self._build_model().to(self.device)
        self.model.train()
        decay = float(train_opt.get("ema_decay", 0.0) or 0.0)
        self.ema = ModelEMA(self.model, decay) if decay > 0 else None
        self.optimizer = self._build_optimizer(train_opt.get("optim_g") or {})
        self.scheduler = build_scheduler(self.optimizer, train_opt.get("scheduler") or {})
        self.iteration = 0
        self.wrapped: nn.Module = self.model
        self._trainable_residual: bool | None = None
        self._tensorboard: Any = None
        self._resume_rng: dict[str, Any] | None = None
        self._saved_at = -1

        if resume is not None:
            self._load_checkpoint(Path(resume))
        self.dataset, self.sampler = self._build_train_data()
        self.val_dataset = self._build_val_data() if self.info.is_main else None

    # -- construction -------------------------------------------------------------------------

    def _build_model(self) -> nn.Module:
        spec = dict(self.config.get("network_g") or {})
        arch = spec.pop("type", None)
        if arch is None:
            raise ValueError("network_g.type must name an architecture")
        return build_model(arch, **spec)

    def _build_optimizer(self, spec: Config) -> torch.optim.Optimizer:
        options = dict(spec)
        kind = options.pop("type", "Adam")
        if kind != "Adam":
            raise ValueError(f"optim_g.type {kind!r}: only Adam (the authors' optimizer)")
        betas = tuple(float(b) for b in options.get("betas", (0.9, 0.99)))
        # Every parameter is handed to Adam, as the authors do; frozen ones have no gradient
        # and Adam leaves them (and their moments) untouched until they get one.
        return torch.optim.Adam(
            self.model.parameters(),
            lr=float(options.get("lr", 5e-4)),
            betas=(betas[0], betas[1]),
            weight_decay=float(options.get("weight_decay", 0.0)),
        )

    def _build_train_data(self) -> tuple[PatchDataset, SeededBatchSampler]:
        opt = get(self.config, "datasets.train")
        if not opt:
            raise ValueError("datasets.train is missing")
        scale = int(self.config.get("scale", opt.get("scale", 0)) or 0)
        if scale < 1:
            raise ValueError("scale must be a positive integer")
        pairs = _paired_images(
            opt["dataroot_gt"], opt.get("dataroot_lq"), opt.get("filename_tmpl", "{}") or "{}"
        )
        dataset = PatchDataset(
            pairs,
            scale=scale,
            lq_size=int(opt.get("lq_size", 64)),
            use_hflip=opt.get("use_hflip", True),
            use_vflip=opt.get("use_vflip", True),
            use_rot=opt.get("use_rot", True),
            use_channels_shuffle=opt.get("use_channels_shuffle", True),
            lq_cache_dir=opt.get("lq_cache_dir"),
        )
        sampler = SeededBatchSampler(
            len(dataset),
            batch_size=int(opt.get("batch_size_per_gpu", 32)),
            seed=self.seed,
            enlarge_ratio=int(opt.get("dataset_enlarge_ratio", 1)),
            shuffle=bool(opt.get("use_shuffle", True)),
            rank=self.info.rank,
            world_size=self.info.world_size,
            start_iteration=self.iteration,
        )
        return dataset, sampler

    def _build_val_data(self):
        opt = get(self.config, "datasets.val")
        if not opt:
            return None
        from reference_models.evaluation.datasets import load_dataset

        root = opt.get("dataroot") or opt.get("dataroot_gt")
        if root is None:
            raise ValueError("datasets.val needs dataroot (HR images or GTmod12/LRbicx{s})")
        path = Path(root)
        if path.name == "GTmod12":  # the authors' style points at the GT sub-folder
            path = path.parent
        return load_dataset(path, int(self.config["scale"]))

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
            "rng": _rng_state(),
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

    def _open_logs(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yml").write_text(dump_config(self.config), encoding="utf-8")
        handler = logging.FileHandler(self.out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        self._log_handler = handler
        self._tensorboard = None
        if get(self.config, "logger.use_tb_logger", True):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                pass
            else:
                self._tensorboard = SummaryWriter(str(self.out_dir / "tb"))

    def _close_logs(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        log.removeHandler(self._log_handler)
        self._log_handler.close()

    def _record(self, tag: str, value: float) -> None:
        if self._tensorboard is not None:
            self._tensorboard.add_scalar(tag, value, self.iteration)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        main = self.info.is_main
        start = self.iteration
        result = TrainResult(self.out_dir, None, self.total_iter, start, 0.0)
        if main:
            self._open_logs()
            log.info(
                "start %s at iteration %d of %d on %d process(es), device %s",
                self.config.get("name", "run"),
                start,
                self.total_iter,
                self.info.world_size,
                self.device,
            )
        if self._resume_rng is not None:
            _set_rng_state(self._resume_rng)
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
            self._close_logs()
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
