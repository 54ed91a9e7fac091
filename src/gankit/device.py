"""Where a run executes: the device, and the process group torchrun describes."""

from __future__ import annotations

import os

import torch

from gankit.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available; under torchrun each process takes the GPU of its LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on GPU)."""
    dist = torch.distributed
    if launched_world() <= 1 or dist.is_initialized():
        return rank_world()
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def launched_world() -> int:
    """How many processes torchrun launched for this run (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
