"""torch.distributed set-up for runs under ``torchrun`` (one or several machines).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and the rendezvous for multi-node
runs); without them the run is a single process.  The backend is NCCL on CUDA and gloo on the CPU.

:func:`finish` ends a distributed run: it destroys the process group, flushes the output and leaves
with ``os._exit`` — a two-process gloo run otherwise aborts at interpreter exit about one time in
four ("terminate called without an active exception") after all work is done.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dcal.errors import ConfigError, DCALError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", threads: int = 0) -> DistributedContext:
    """Initialise the process group when launched by torchrun; pick this process's device.

    ``threads`` > 0 sets torch's CPU threads (on a busy or small machine one thread per process is
    often much faster than several, which wait on each other).
    """
    if threads > 0:
        torch.set_num_threads(threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    use_cuda = torch_device.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(torch_device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, torch_device)


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without an index is this process's GPU
    (``LOCAL_RANK`` under torchrun); ``cpu``, ``cuda:1``, ... as given.  A device this machine does
    not have (``cuda`` without a CUDA driver) or a misspelt name raises a one-line
    :class:`~dcal.errors.ConfigError` listing the devices that are available."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name; expected auto, cpu, cuda or cuda:N "
                          f"(available here: {', '.join(available_devices())})") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type != "cpu" and str(device) not in available_devices():
        raise ConfigError(f"device {name!r}{f' ({device})' if str(device) != name else ''} is not available "
                          f"on this machine; available: {', '.join(available_devices())}")
    return device


def available_devices() -> list[str]:
    """``cpu`` and each CUDA device torch can use (``cuda:0``, ...), and ``mps`` where it is."""
    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    mps = getattr(torch.backends, "mps", None)
    return devices + (["mps"] if mps is not None and mps.is_available() else [])


def finish(context: DistributedContext, exit_code: int = 0) -> int:
    """End the run; a distributed run leaves the interpreter here with ``os._exit(exit_code)``."""
    if not context.distributed:
        return exit_code
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def all_gather_objects(obj, context: DistributedContext) -> list:
    """``obj`` from every rank, in rank order (just ``[obj]`` in a single process)."""
    if not context.distributed:
        return [obj]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, context: DistributedContext):
    """Rank 0's ``obj`` on every rank."""
    if not context.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def abort(context: DistributedContext, error: BaseException) -> None:
    """Leave a distributed run after an error on this rank: report it, flush, ``os._exit`` (no hang at exit)."""
    if isinstance(error, DCALError):
        print(f"dcal: error on rank {context.rank}: {error}", file=sys.stderr)
        code = 2
    else:
        traceback.print_exception(type(error), error, error.__traceback__)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def sum_over_processes(count: int, context: DistributedContext, device) -> int:
    """``count`` summed over the processes (itself in a single-process run)."""
    if not context.distributed:
        return count
    total = torch.tensor([count], device=device)
    torch.distributed.all_reduce(total)
    return int(total.item())


def step_values(loss: torch.Tensor, parts: dict, context: DistributedContext) -> tuple[float, bool, dict]:
    """The step's loss and ``parts`` as floats, means over the processes (so a run logs the same
    values on any number of them), and whether the loss is finite on every process: one host sync."""
    values = torch.stack([(~torch.isfinite(loss)).float(), loss, *(v.detach().float() for v in parts.values())])
    if context.distributed:
        torch.distributed.all_reduce(values)
        values[1:] /= context.world_size
    flag, loss_value, *rest = values.tolist()
    return loss_value, flag == 0, dict(zip(parts, rest))
