"""The original's mixture of training sets, and optional SMPL fits replacing a dataset's pseudo labels.

Each sample first draws which member dataset it comes from (fixed probabilities), then takes
``index % len(member)``. The epoch length is the longest member's length, as in the original.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from torch.utils.data import Dataset

from datasets.base_dataset import AugmentOptions, BaseDataset

logger = logging.getLogger(__name__)

MIXED_DATASETS = ('h36m', 'lsp-orig', 'mpii', 'lspet', 'coco', 'mpi-inf-3dhp')
IN_THE_WILD = ('lsp-orig', 'mpii', 'lspet', 'coco')
# (share of Human3.6M, share of the in-the-wild sets, share of MPI-INF-3DHP) per release.
PARTITIONS = {'eft': (0.5, 0.3, 0.2), 'conference': (0.3, 0.6, 0.1)}
# The EFT-era release trains on the full COCO set with EFT fits.
COCO_NAME = {'eft': 'coco-full', 'conference': 'coco'}


def load_fits(fits_dir: str, dataset: str, num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """SMPL fits of one dataset from ``fits_dir``, or None when the folder has none for it.

    Reads ``<dataset>.npy`` (N, 82) = pose (72) + betas (10), all valid (SPIN's static fits), or
    ``<dataset>.npz`` with ``pose`` (N, 72), ``betas`` (N, 10) and ``valid_fit`` (N,).

    Returns:
        ``(pose_aa (N, 72), betas (N, 10), valid (N,))``.

    Raises:
        ValueError: the file does not have one row per sample.
    """
    npy, npz = os.path.join(fits_dir, f'{dataset}.npy'), os.path.join(fits_dir, f'{dataset}.npz')
    if os.path.isfile(npy):
        data = np.load(npy)
        pose, betas, valid = data[:, :72], data[:, 72:82], np.ones(len(data), np.float32)
        path = npy
    elif os.path.isfile(npz):
        with np.load(npz) as data:
            pose, betas, valid = data['pose'], data['betas'], data['valid_fit'].astype(np.float32)
        path = npz
    else:
        return None
    if len(pose) != num_samples:
        raise ValueError(f'{path} holds {len(pose)} fits but dataset {dataset!r} has {num_samples} samples')
    return pose.astype(np.float64), betas.astype(np.float64), valid


def apply_fits(dataset: BaseDataset, fits_dir: str) -> bool:
    """Replace ``dataset``'s SMPL labels by the fits in ``fits_dir`` (if it has them); returns whether it did.

    Betas beyond +-3 are zeroed, as the original; samples keep their own SMPL labels where the fit is invalid.
    """
    fits = load_fits(fits_dir, dataset.dataset, len(dataset))
    if fits is None:
        return False
    pose, betas, valid = fits
    betas = np.where(np.abs(betas).max(axis=1, keepdims=True) > 3, 0.0, betas)
    use = valid > 0
    dataset.pose[use], dataset.betas[use] = pose[use], betas[use]
    dataset.has_smpl = np.maximum(dataset.has_smpl, valid.astype(np.float32))
    logger.info('%s: SMPL fits from %s for %d of %d samples', dataset.dataset, fits_dir, int(use.sum()), len(use))
    return True


class MixedDataset(Dataset):
    """Human3.6M, the in-the-wild 2D sets and MPI-INF-3DHP mixed with the original's ratios.

    Args:
        partition: 'eft' (0.5 / 0.3 / 0.2, with COCO-full, the released setting) or 'conference'
            (0.3 / 0.6 / 0.1); the in-the-wild share is split in proportion to the members' lengths.
        options: augmentation strengths and crop size.
        fits_dir: folder of SMPL fits for the non-H36M members (`load_fits`), or '' for none.
    """

    def __init__(self, partition: str = 'eft', options: AugmentOptions | None = None, fits_dir: str = '') -> None:
        if partition not in PARTITIONS:
            raise ValueError(f'unknown mixed-data partition {partition!r}; choose one of {sorted(PARTITIONS)}')
        names = [COCO_NAME[partition] if name == 'coco' else name for name in MIXED_DATASETS]
        self.dataset_list = names
        missing = []
        self.datasets = []
        for name in names:
            try:
                self.datasets.append(BaseDataset(name, is_train=True, options=options))
            except FileNotFoundError as err:
                missing.append(str(err).splitlines()[0])
        if missing:
            raise FileNotFoundError('mixed training needs every member dataset; missing:\n  ' + '\n  '.join(missing)
                                    + '\nTrain on one dataset with --single_dataset --single_dataname NAME instead.')
        if fits_dir:
            for ds in self.datasets:
                if ds.dataset != 'h36m':
                    apply_fits(ds, fits_dir)
        lengths = np.array([len(ds) for ds in self.datasets], np.float64)
        self.length = int(lengths.max())
        h36m, itw, mpi = PARTITIONS[partition]
        itw_lengths = lengths[1:5]
        shares = np.concatenate([[h36m], itw * itw_lengths / itw_lengths.sum(), [mpi]])
        self.partition = np.cumsum(shares)
        self.partition[-1] = 1.0
        logger.info('mixed training data (%s): %s', partition,
                    ', '.join(f'{n} {len(d)} ({s:.3f})' for n, d, s in zip(names, self.datasets, shares)))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        member = int(np.searchsorted(self.partition, np.random.uniform(), side='right'))
        member = min(member, len(self.datasets) - 1)
        dataset = self.datasets[member]
        return dataset[index % len(dataset)]
