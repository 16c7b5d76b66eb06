"""Single-process or DDP context: the loop reads rank/world/device from here only.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is
initialised from the environment: NCCL on CUDA, gloo on CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from proc_ml.errors import ConfigError


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"config key 'training.device' is '{preference}', "
                              f"but no CUDA device is available (use auto or cpu)")
        return torch.device(preference if ":" in preference else f"cuda:{local_rank}")
    return torch.device("cpu")


def setup(device_preference: str, threads: int = 0) -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if threads:
        torch.set_num_threads(threads)
    elif device.type == "cpu" and local_world > 1:
        # processes on one machine share its cores; oversubscribing them is much slower
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    owns = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Context(rank, world, local_rank, device, owns)


def all_reduce_sum(tensors, ctx: Context) -> list[torch.Tensor]:
    if ctx.distributed:
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return list(tensors)


def broadcast_flag(flag: bool, ctx: Context) -> bool:
    """Rank 0's decision, shared by every rank."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([int(flag)], device=ctx.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
