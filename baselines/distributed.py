"""Several processes on one run, started by torchrun: ``torchrun --nproc-per-node N -m
evaluator.cli baseline run ...`` (or ``run-all``).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; a run sees them and splits its work. FORB's
neural baselines split the feature cache's chunks over the ranks; the anomaly baselines split
the categories. Each rank writes what it computed into the run's cache, so the cache folder must
be one that every rank sees (one machine, or a shared filesystem); after a barrier, rank 0 reads
everything back, searches or assembles, and alone writes the entry. Work that does not split
(BoW's codebook and search, evaluation) runs on rank 0 while the others wait.

The split never changes a result: a chunk's features are computed in the same batches whichever
rank computes them, so the predictions equal a single process's.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass

from baselines.errors import BaselineUsageError

# Ranks wait at barriers while others work (a category can take an hour): far beyond the
# default 10-30 minutes.
BARRIER_TIMEOUT = dt.timedelta(hours=48)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: list) -> list:
        """This rank's items: every world_size-th, starting at its rank."""
        return items[self.rank::self.world_size]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": _backend_name()} if self.active \
            else {"world_size": 1}


SINGLE = Ranks()


def from_environment() -> Ranks:
    """The ranks torchrun describes in the environment (one process without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise BaselineUsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as "
                                 "torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise BaselineUsageError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return Ranks(rank, world, local)


def start(ranks: Ranks, device: str) -> str:
    """Join the process group (NCCL on GPUs, gloo on CPUs) and return this rank's device:
    ``cuda`` means ``cuda:<LOCAL_RANK>`` under torchrun."""
    if not ranks.active:
        return device
    import torch
    import torch.distributed as dist

    if device == "cuda":
        device = f"cuda:{ranks.local_rank}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                timeout=BARRIER_TIMEOUT)
    return device


def stop() -> None:
    """Leave the process group, if this process joined one."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _backend_name() -> str | None:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_initialized() else None
