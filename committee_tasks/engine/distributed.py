"""Sharing one evaluation between processes: torchrun ranks and job-array shards.

Every sample belongs to exactly one share, by its place among the samples asked for (the whole
dataset, or the evenly spaced ``--limit`` subset), in blocks of one batch: (place // batch) % N
== I. That is the same split in every process whatever the cache held when it started, so no
sample is done twice and none is left out, and no process needs to know what another has done.
Whole batches, because PyTorch's kernels may round a sample's output differently in a batch of
other samples or of another size: a share computes each sample in the batch a single process
would (on an empty cache), so the cached outputs match it bit for bit. Each process
runs every member on its share on its own device and writes its own shards (the cache's names
and locks keep writers apart); the cache is the only thing the processes share.

* ``--shard I/N`` (SLURM arrays, several machines, a notebook per GPU): share I of N; a later run
  of the same command reads the union once every share is done.
* torchrun (``WORLD_SIZE`` > 1 in the environment): share RANK of WORLD_SIZE on
  ``cuda:LOCAL_RANK`` (or the CPU); after a barrier rank 0 alone reads the union, scores, measures
  and reports, and the other ranks exit. Nothing crosses between ranks but that barrier, so the
  group is gloo's even between GPUs: a barrier needs no GPU, and ranks may then share one
  (``--device cuda:0``), which NCCL refuses.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta

from committee_tasks.core.errors import CommitteeError

log = logging.getLogger("committee_tasks")

BARRIER_TIMEOUT = timedelta(days=7)  # ranks wait at the barrier for the slowest one's share


@dataclass(frozen=True)
class Share:
    """Share ``index`` of ``count`` (0-based): the samples whose place p among those asked for has
    (p // block) % count == index, ``block`` being the batch size."""

    index: int
    count: int

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise CommitteeError(f"a share is I/N with 0 <= I < N, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Share:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise CommitteeError(f"--shard takes I/N (share I of N, 0-based, e.g. 0/4), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def holds(self, place: int, block: int = 1) -> bool:
        return self.owner(place, block, self.count) == self.index

    @staticmethod
    def owner(place: int, block: int, count: int) -> int:
        """The share of ``count`` that holds the sample at ``place`` (in blocks of ``block``)."""
        return (place // block) % count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Rank:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local: int

    @property
    def share(self) -> Share:
        return Share(self.rank, self.world)


TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets besides WORLD_SIZE


def torchrun_rank() -> Rank | None:
    """The torchrun rank of this process, or None outside a job of several processes. A job's
    environment that is incomplete (``WORLD_SIZE`` exported by a job template, or inherited by a
    subprocess of a torchrun script) is refused by name, not failed on inside torch."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(text)
    except ValueError:
        raise CommitteeError(f"WORLD_SIZE={text!r} in the environment is not a whole number: launch with torchrun, "
                             "or unset it") from None
    if world <= 1:
        return None
    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if missing:
        raise CommitteeError(f"WORLD_SIZE={world} is set but {', '.join(missing)} not: a job of several processes is "
                             "launched with torchrun (or srun torchrun), which sets them all; outside one, unset "
                             "WORLD_SIZE")
    try:
        return Rank(int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]))
    except ValueError:
        raise CommitteeError(f"RANK={os.environ['RANK']!r} and LOCAL_RANK={os.environ['LOCAL_RANK']!r} must be "
                             "whole numbers (torchrun sets them)") from None


def rank_device(rank: Rank, device: str) -> str:
    """Each rank's own device: ``cuda:LOCAL_RANK`` where the option leaves the choice to us
    (auto, cuda) and CUDA is there; the option as given otherwise (cpu, cuda:N), checked as a
    single process checks it, before the job's process group is joined."""
    import torch

    from committee_tasks.core.devices import resolve_device

    chosen = resolve_device(device)  # "cuda" without CUDA: the same one-line error as one process
    if chosen.type == "cuda" and chosen.index is None:
        count = torch.cuda.device_count()
        if rank.local >= count:
            raise CommitteeError(f"rank {rank.rank} is local rank {rank.local} on its machine, which has {count} CUDA "
                                 f"device(s): --device cuda gives each rank its own GPU, so --nproc_per_node at most "
                                 f"{count}; or --device cuda:0 puts every rank of the machine on that one")
        return f"cuda:{rank.local}"
    if chosen.type == "cuda" and rank.world > 1:
        log.warning("--device %s puts every rank of this machine on that one GPU; --device cuda gives each rank its "
                    "own (cuda:LOCAL_RANK)", device)
    return "cpu" if device == "auto" else device


def join(rank: Rank, device: str) -> None:
    """Join the job's process group, if not yet joined: gloo, on GPUs too. Its one collective is
    the final barrier, which needs no GPU; NCCL would add nothing but its refusal of two ranks on
    one GPU."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    from committee_tasks.core.signals import default_signals

    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(device)  # what the rank allocates without naming a device goes to its own GPU
    with default_signals():  # it waits in C++ for every rank: SIGTERM and Ctrl-C must still end it
        dist.init_process_group("gloo", rank=rank.rank, world_size=rank.world, timeout=BARRIER_TIMEOUT)


def wait_for_every_rank() -> None:
    """The barrier after every rank's share, then leave the group: rank 0 goes on alone. The
    share is written by then, so SIGTERM or Ctrl-C during the wait ends the process at once."""
    import torch.distributed as dist

    from committee_tasks.core.signals import default_signals

    with default_signals():
        dist.barrier()
    dist.destroy_process_group()
