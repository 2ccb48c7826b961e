"""Data-parallel training under ``torchrun``: ranks, gradient averaging, buffer synchronisation.

Each rank trains on its share of every epoch; before each optimiser step the gradients are averaged
(:func:`grad_reducer`), so the parameters stay identical on every rank. Buffers are not gradients:
BatchNorm's running statistics are updated by each rank's own forwards and drift apart.
:func:`sync_buffers` averages them (floating-point buffers) across ranks. For momentum updates
``r <- (1 - mu) r + mu s`` applied to every rank from the same start, the average over ranks is the
same exponential average of the rank-averaged batch statistics, so averaging once before the
parameters are used (validation, checkpoint) equals averaging after every step. For the mean that
is the statistic of the global batch (equal rank batches); for the variance it is the mean of the
ranks' variances, which misses the spread of the ranks' means (SyncBatchNorm would include it, at
one collective per BatchNorm layer per forward).
"""

from __future__ import annotations

import atexit
import os

import torch


def dist_info() -> tuple[int, int]:
    """``(rank, world)``; initialises the process group when started by ``torchrun``."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(_destroy)  # a group left alive at exit can abort the process (gloo's threads)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj, world: int):
    """Rank 0's ``obj`` on every rank (a decision only rank 0 may take, such as whether to resume)."""
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_for_all(world: int) -> None:
    """A barrier at the end of a run: no rank leaves (and tears down its connections) while rank 0 still
    evaluates and writes the result."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def grad_reducer(world: int):
    """A function averaging the ``.grad`` of the given parameters over the ranks (``None`` alone)."""
    if world == 1:
        return None
    import torch.distributed as dist

    def reduce(params):
        for p in params:
            dist.all_reduce(p.grad)
            p.grad /= world

    return reduce


def sync_buffers(model: torch.nn.Module, world: int) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks, in place.

    Integer buffers (``num_batches_tracked``) are taken from rank 0; every rank runs the same number
    of steps, so they agree already. A no-op on one process.
    """
    if world == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for b in model.buffers():
            if b.is_floating_point():
                dist.all_reduce(b)
                b /= world
            else:
                dist.broadcast(b, 0)


def broadcast_model(model: torch.nn.Module, world: int) -> None:
    """Rank 0's parameters and buffers on every rank, in place (a no-op on one process)."""
    if world == 1:
        return
    import torch.distributed as dist

    for t in model.state_dict().values():
        dist.broadcast(t, 0)


def ranks_identical_or_raise(model: torch.nn.Module, world: int) -> bool | None:
    """A guard after the last step: every rank must hold the same weights and floating-point buffers.
    ``None`` on one process."""
    if world == 1:
        return None
    import torch.distributed as dist

    flat = torch.cat([p.detach().double().flatten() for p in model.state_dict().values() if p.is_floating_point()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if not all(torch.equal(gathered[0], g) for g in gathered[1:]):
        raise RuntimeError("distributed ranks ended with different weights")
    return True
