"""torchrun support: read the launcher's environment, start and stop the process group, rank-0-only helpers.

The same ``ignn-lab train`` command runs alone or under ``torchrun --nproc_per_node=G``: torchrun sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (multi-node through its own ``--nnodes``/``--rdzv-*`` flags), and
the backend follows the device: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_max", "barrier", "dist_info", "init_distributed", "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` (``local_rank`` on its node)."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def dist_info() -> DistInfo:
    """This process's rank and world size from torchrun's environment (rank 0 of 1 without it)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank, _env_int("LOCAL_RANK", rank), world)


def init_distributed(device: torch.device) -> tuple[DistInfo, bool]:
    """Start the process group when launched by torchrun (NCCL on CUDA, gloo on CPU).

    Returns:
        (info, started): ``started`` is True when this call created the group (the caller then ends it with
        :func:`shutdown`); a group the application made itself is used as it is.
    """
    info = dist_info()
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        return info, True
    return info, False


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_max(value: float, device: torch.device) -> float:
    """The maximum of ``value`` over all ranks (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def shutdown() -> None:
    """Destroy the process group if this process started one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
