"""Collectives of a multi-process training run, each one called by every process at the same point.

A collective (all-reduce, gather, barrier) returns only once every process of the run has called it. A
decision that one process takes alone (stop on a signal, skip a bad batch, save the best checkpoint) and
that leads to a collective the others never reach leaves the run hanging. So every such decision is taken
from values agreed through one of these functions, after which all processes act alike. Single-process runs
(``info.distributed`` False) call no torch.distributed function.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from utils.train_utils import DistInfo


def _tensor_device(info: DistInfo) -> torch.device:
    """Where a collective's tensor must live: the GPU for NCCL, the CPU for gloo."""
    return info.device if dist.get_backend() == 'nccl' else torch.device('cpu')


def sum_across_ranks(values: Sequence[float], info: DistInfo) -> list[float]:
    """Element-wise sums of ``values`` over all processes (float64; one all-reduce)."""
    if not info.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_tensor_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def all_ranks_agree(flag: bool, info: DistInfo) -> bool:
    """True only if ``flag`` is True on every process (one all-reduce)."""
    return sum_across_ranks([0.0 if flag else 1.0], info)[0] == 0


def gather_objects(obj, info: DistInfo) -> list:
    """Every process's ``obj`` (picklable), in rank order, on every process (one all-gather)."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def sum_running_totals(totals: dict, info: DistInfo) -> dict:
    """Merge ``{group: {name: (total, count)}}`` over processes: the union of the keys, totals and counts summed.

    Processes may hold different keys (an empty validation shard holds none), so the dictionaries are
    gathered, not all-reduced element-wise.
    """
    merged: dict = {}
    for rank_totals in gather_objects(totals, info):
        for group, entries in rank_totals.items():
            into = merged.setdefault(group, {})
            for name, (total, count) in entries.items():
                old_total, old_count = into.get(name, (0.0, 0))
                into[name] = (old_total + total, old_count + count)
    return merged


def shard_indices(num_samples: int, info: DistInfo) -> range:
    """This process's share of ``num_samples`` evaluation samples: every ``world_size``-th from ``rank``.

    Each sample is evaluated by exactly one process (no padding, no repeats), so sums over processes are
    sums over the whole set.
    """
    return range(info.rank, num_samples, info.world_size)
