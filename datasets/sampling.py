"""Resumable, reproducible sample order for training, and a guard that turns bad samples into reports.

Every sample's augmentation is drawn from its own seed, a function of (run seed, epoch, position in the
epoch's order). Together with a sampler that can start in the middle of an epoch, this makes a resumed run
see exactly the batches an uninterrupted run would have seen, whatever the number of data-loader workers,
and it gives each worker different augmentations (the usual worker-seeding pitfall of numpy RNGs).
"""
from __future__ import annotations

import logging
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from utils.cli import UserError

logger = logging.getLogger(__name__)

BAD_SAMPLE_KEY = '_bad_sample'


class BadDataError(UserError, RuntimeError):
    """A bad sample or a non-finite loss met the 'stop' policy, too many were skipped, or all of them were."""


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed for the sample at ``position`` of ``epoch``'s order."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, position]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """Shuffled (or sequential) order per epoch, sharded across processes, able to start mid-epoch.

    Yields ``(dataset_index, sample_seed)`` pairs for `SeededSamples`. The order of an epoch depends only on
    ``(seed, epoch)``; process ``rank`` of ``num_replicas`` takes every ``num_replicas``-th entry, the epoch
    being truncated to a multiple of ``num_replicas * batch_size`` (whole batches only, as ``drop_last``).

    Args:
        num_samples: dataset length.
        batch_size: per-process batch size.
        seed: run seed.
        shuffle: random order (True) or 0..N-1.
        num_replicas, rank: distributed processes and this one's rank.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if num_samples < batch_size * num_replicas:
            raise ValueError(f'the training set has {num_samples} samples, fewer than one batch '
                             f'({batch_size} per process x {num_replicas} processes)')
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Whole batches per process in one epoch."""
        return self.num_samples // (self.batch_size * self.num_replicas)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (a resumed epoch)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        gen = torch.Generator()
        gen.manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.num_samples, generator=gen).tolist()

    def __iter__(self):
        order = self._order()
        per_step = self.batch_size * self.num_replicas
        used = self.batches_per_epoch * per_step
        for position in range(self.start_batch * per_step + self.rank, used, self.num_replicas):
            yield order[position], sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class SeededSamples(Dataset):
    """Wraps a dataset: seeds the RNGs per sample and reports bad samples instead of raising.

    ``__getitem__((index, seed))`` seeds ``random`` and ``numpy`` (what the augmentation draws from), then
    reads ``dataset[index]``. A sample that cannot be read (missing or corrupt image, malformed annotation)
    or whose labels hold non-finite numbers comes back as ``{BAD_SAMPLE_KEY: description}``;
    `collate_skipping_bad` drops it from the batch and lists it.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        random.seed(seed)
        np.random.seed(seed)
        return guarded_item(self.dataset, index)


# Every tensor of a sample that the losses or the metrics read.
LABEL_KEYS = ('img', 'pose', 'betas', 'keypoints', 'pose_3d', 'smpl_2dkps', 'center')


def guarded_item(dataset: Dataset, index: int) -> dict:
    """``dataset[index]``, or ``{BAD_SAMPLE_KEY: description}`` when it cannot be read or holds non-finite labels."""
    try:
        item = dataset[index]
    except (OSError, ValueError, IndexError, KeyError, RuntimeError) as err:
        return {BAD_SAMPLE_KEY: f'sample {index}: {" ".join(str(err).split())}'}
    for key_name in LABEL_KEYS:
        value = item.get(key_name)
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return {BAD_SAMPLE_KEY: f'sample {index} ({item.get("imgname", "?")}): non-finite {key_name!r}'}
    return item


class GuardedSamples(Dataset):
    """Wraps a dataset for evaluation: a sample that cannot be read comes back as a bad-sample report."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return guarded_item(self.dataset, index)


class BadSampleCounter:
    """The bad-sample policy shared by training and evaluation.

    ``policy`` 'skip' reports each bad sample, counts it and goes on (stopping once more than
    ``max_skipped`` were skipped, -1: never); 'stop' raises `BadDataError` at the first one.
    """

    def __init__(self, policy: str = 'skip', max_skipped: int = -1, what: str = 'TRAIN.BAD_SAMPLE_POLICY') -> None:
        if policy not in ('skip', 'stop'):
            raise BadDataError(f"{what} must be 'skip' or 'stop', got {policy!r}", f'set {what} skip')
        self.policy = policy
        self.max_skipped = max_skipped
        self.what = what
        self.skipped = 0
        self.examples: list[str] = []

    def report(self, message: str) -> None:
        """One bad sample (or step): raise under 'stop' or past the limit, else log and count it."""
        if self.policy == 'stop':
            raise BadDataError(f'{message} ({self.what} is stop)', f'fix the data, or set {self.what} skip')
        self.skipped += 1
        if len(self.examples) < 20:
            self.examples.append(message)
        logger.warning('skipped: %s (%d skipped so far)', message, self.skipped)
        if 0 <= self.max_skipped < self.skipped:
            raise BadDataError(f'more than {self.max_skipped} bad samples were skipped; last: {message}',
                               'fix the data or its paths')


def collate_skipping_bad(items: list[dict]) -> dict:
    """Collate the good samples; ``batch['bad_samples']`` lists the descriptions of the dropped ones."""
    good = [item for item in items if BAD_SAMPLE_KEY not in item]
    bad = [item[BAD_SAMPLE_KEY] for item in items if BAD_SAMPLE_KEY in item]
    batch = default_collate(good) if good else {}
    batch['bad_samples'] = bad
    return batch


def loader_seed_generator(seed: int) -> torch.Generator:
    """A private generator for the DataLoader, so creating an iterator leaves the global RNG untouched."""
    gen = torch.Generator()
    gen.manual_seed(seed + 1_000_000)
    return gen
