"""Several processes: the ``torchrun`` environment, the process group, and rank-0 duties.

``torchrun --nproc_per_node=N`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; a plain
``python``/``etds`` launch sets none and runs as rank 0 of 1 without a process group. The
backend is NCCL when the process drives a CUDA device and gloo otherwise (CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits: global rank, rank on the node, process count, its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and validation results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> ProcessInfo:
    """Read the launcher's environment, pick the device and start the process group if needed.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available). Under several CUDA
    processes each takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda:
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return ProcessInfo(rank, local_rank, world_size, torch_device)


def barrier(info: ProcessInfo) -> None:
    """Wait for every process (no-op for a single process)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def mean_over_processes(value: torch.Tensor, info: ProcessInfo) -> torch.Tensor:
    """The mean of a scalar tensor over all processes (for the logged loss)."""
    if not info.distributed:
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / info.world_size


def teardown(info: ProcessInfo) -> None:
    """Close the process group this module opened."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
