"""Reader of SPIN-format ``.npz`` annotation files, shared by training and evaluation.

Each file holds per-sample arrays (``imgname``, ``center``, ``scale`` and, where the dataset has them,
``part``, ``openpose``, ``S``, ``pose``, ``shape``, ``has_smpl``, ``gender``, ``maskname``,
``partname``, ``smpl_2dkps``). Images are read from the dataset root, cropped to 224x224 with the
original's conventions (``utils.imutils``) and, in training, augmented exactly as the original does:
flip p=0.5, per-channel pixel noise, rotation N(0,1)*30 clipped to +-60 deg and zeroed with p=0.6,
scale 1+N(0,1)*0.25 clipped to [0.75, 1.25].
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from core import constants
from utils import imutils
from utils.cli import DataFileError

logger = logging.getLogger(__name__)

# Where each annotation file can be obtained, for the error message of a missing file.
_NPZ_SOURCES = {
    '3dpw': 'run tools/prepare_3dpw.py on the official 3DPW sequenceFiles, or use SPIN\'s dataset_extras',
    'synthetic': 'run tools/make_synthetic_dataset.py',
}
_DEFAULT_NPZ_SOURCE = 'SPIN\'s preprocessed dataset_extras (see the README, section Data)'

# Per-sample numeric fields of the format: the shape of one row. Present fields must match.
ROW_SHAPES = {'center': (2,), 'scale': (), 'part': (24, 3), 'openpose': (25, 3), 'S': (24, 4), 'pose': (72,),
              'shape': (10,), 'has_smpl': (), 'smpl_2dkps': (24, 3)}
# Per-sample text fields (one string per row).
TEXT_FIELDS = ('imgname', 'gender', 'maskname', 'partname')
REQUIRED_FIELDS = ('imgname', 'center', 'scale')
# Larger magnitudes are no pixel, metre or radian value (and overflow float32): such rows count as bad.
MAX_VALUE = 1e20


class BadSampleError(DataFileError):
    """One row of an annotation file holds unusable values (non-finite numbers, a box of size <= 0)."""


@dataclass
class AugmentOptions:
    """Augmentation strengths (the original's train.py defaults) and the crop size."""

    img_res: int = constants.IMG_RES
    rot_factor: float = 30.0
    noise_factor: float = 0.4
    scale_factor: float = 0.25


def resolve_dataset_paths(dataset: str, is_train: bool) -> tuple[str, str]:
    """Annotation file and image root of a named dataset, from ``core.path_config``.

    Args:
        dataset: dataset name as in the original (``3dpw``, ``h36m-p2``, ``coco``...).
        is_train: pick the training file (True) or the test file (False).

    Returns:
        ``(npz_path, img_dir)``.

    Raises:
        ValueError: unknown dataset name for this split.
    """
    from core import path_config

    files = path_config.DATASET_FILES[int(is_train)]
    if dataset not in files or dataset not in path_config.DATASET_FOLDERS:
        split = 'training' if is_train else 'test'
        raise ValueError(f'unknown {split} dataset {dataset!r}; known: {sorted(files)}')
    return files[dataset], path_config.DATASET_FOLDERS[dataset]


def load_annotation_npz(npz_path: str, dataset: str = '') -> dict[str, np.ndarray]:
    """Load every array of a SPIN-format annotation file into memory.

    Raises:
        FileNotFoundError: the file is missing; the message says where it comes from.
        DataFileError: the file is not an npz archive (truncated, another format, a folder).
    """
    if not os.path.isfile(npz_path):
        source = _NPZ_SOURCES.get(dataset, _DEFAULT_NPZ_SOURCE)
        raise FileNotFoundError(
            f'annotation file of dataset {dataset!r} not found: {npz_path}; '
            f'get it from: {source}. Annotation files live in <data root>/dataset_extras: set PYMAF_DATA_DIR if '
            f'your data root is elsewhere, or pass the file itself (eval.py --dataset_file).')
    fix = 'pass a SPIN-format annotation .npz (np.savez of per-sample arrays), or regenerate it'
    try:
        with open(npz_path, 'rb') as f:  # (our handle: closed also when numpy fails half-way)
            data = np.load(f, allow_pickle=True)
            if not hasattr(data, 'files'):
                raise DataFileError(f'{npz_path} holds a single array, not an npz archive of named fields', fix)
            return {key: data[key] for key in data.files}
    except (DataFileError, PermissionError):
        raise
    except Exception as err:  # noqa: BLE001 (numpy, zipfile and pickle raise many types for a foreign file)
        raise DataFileError(f'{npz_path} is not a readable npz archive ({type(err).__name__})', fix) from None


def _first_rows(mask: np.ndarray, show: int = 5) -> str:
    rows = np.flatnonzero(mask)
    more = f' (+{len(rows) - show} more)' if len(rows) > show else ''
    return ', '.join(str(r) for r in rows[:show]) + more


def check_annotation(data: dict[str, np.ndarray], npz_path: str) -> dict[int, str]:
    """Check the fields of a SPIN-format annotation (see `ROW_SHAPES`); returns ``{row: problem}`` of bad rows.

    A missing required field, a field of another length, row shape or type is a `DataFileError` naming the
    file and the field. Rows with non-finite numbers or a box scale <= 0 are returned (the file's other
    rows stay usable; callers skip or stop on them by their bad-sample policy).
    """
    fix = 'regenerate the file, or fix the named field'
    missing = [key for key in REQUIRED_FIELDS if key not in data]
    if missing:
        raise DataFileError(f'{npz_path} lacks the field(s) {", ".join(missing)} (it has: '
                            f'{", ".join(sorted(data)) or "nothing"})',
                            'a SPIN-format annotation needs imgname, center and scale per sample')
    names = data['imgname']
    if names.ndim != 1 or names.dtype.kind not in 'USO':
        raise DataFileError(f'{npz_path}: imgname must be a 1-D array of file names, got {names.dtype} '
                            f'of shape {names.shape}', fix)
    n = len(names)
    if n == 0:
        raise DataFileError(f'{npz_path} holds no samples (imgname is empty)', 'pass a file with samples')
    for key in TEXT_FIELDS[1:]:
        if key in data and (data[key].ndim != 1 or len(data[key]) != n):
            raise DataFileError(f'{npz_path}: {key} has shape {data[key].shape}, expected ({n},) like imgname', fix)
    bad: dict[int, str] = {}
    for key, row_shape in ROW_SHAPES.items():
        if key not in data:
            continue
        arr = data[key]
        if arr.shape != (n,) + row_shape:
            raise DataFileError(f'{npz_path}: {key} has shape {arr.shape}, expected {(n,) + row_shape} '
                                f'({n} samples)', fix)
        if arr.dtype.kind not in 'biuf':
            raise DataFileError(f'{npz_path}: {key} holds {arr.dtype} values, expected numbers', fix)
        values = arr.astype(np.float64).reshape(n, -1)
        finite = (np.isfinite(values) & (np.abs(values) < MAX_VALUE)).all(axis=1)
        if key == 'scale':
            finite &= arr.astype(np.float64) > 0
        for row in np.flatnonzero(~finite):
            bad.setdefault(int(row), f'non-finite or invalid {key}')
        if not finite.all():
            logger.warning('%s: %d row(s) with non-finite or invalid %s (rows %s); they count as bad samples',
                           npz_path, int((~finite).sum()), key, _first_rows(~finite))
    return bad


def normalize_img(img: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise a (3, H, W) RGB tensor in [0, 1]."""
    mean = torch.tensor(constants.IMG_NORM_MEAN, dtype=img.dtype)[:, None, None]
    std = torch.tensor(constants.IMG_NORM_STD, dtype=img.dtype)[:, None, None]
    return (img - mean) / std


class BaseDataset(Dataset):
    """One SPIN-format dataset; ``__getitem__`` returns the original's sample dict (its fields: docs/datasets.md).

    Args:
        dataset: dataset name (used to find the files and stored in each sample).
        is_train: training split with augmentation, or test split without.
        ignore_3d: drop the SMPL and 3D-joint labels (``has_smpl = has_pose_3d = 0``).
        use_augmentation: allow augmentation in training (False gives deterministic training crops).
        options: augmentation strengths and crop size.
        npz_path: annotation file, overriding the one from ``core.path_config``.
        img_dir: image root, overriding the one from ``core.path_config``.
    """

    def __init__(self, dataset: str, is_train: bool = False, ignore_3d: bool = False,
                 use_augmentation: bool = True, options: AugmentOptions | None = None,
                 npz_path: str | None = None, img_dir: str | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.is_train = is_train
        self.use_augmentation = use_augmentation
        self.options = options or AugmentOptions()
        if npz_path is None or img_dir is None:
            default_npz, default_dir = resolve_dataset_paths(dataset, is_train)
            npz_path = npz_path or default_npz
            img_dir = img_dir or default_dir
        self.npz_path = npz_path
        self.img_dir = img_dir
        data = load_annotation_npz(npz_path, dataset)
        self.bad_rows = check_annotation(data, npz_path)
        self.imgname = data['imgname']
        with np.errstate(over='ignore', invalid='ignore'):  # rows out of float32's range are in bad_rows already
            self.center = data['center'].astype(np.float32)
            self.scale = data['scale'].astype(np.float32)
        n = len(self.imgname)

        if 'pose' in data and 'shape' in data:
            self.pose = data['pose'].astype(np.float64)
            self.betas = data['shape'].astype(np.float64)
            self.has_smpl = data['has_smpl'].astype(np.float32) if 'has_smpl' in data else np.ones(n, np.float32)
        else:
            self.pose = np.zeros((n, 72))
            self.betas = np.zeros((n, 10))
            self.has_smpl = np.zeros(n, np.float32)
        if 'S' in data:
            self.pose_3d = data['S'].astype(np.float64)
            self.has_pose_3d = 1
        else:
            self.pose_3d = None
            self.has_pose_3d = 0
        if ignore_3d:
            self.has_smpl = np.zeros(n, np.float32)
            self.has_pose_3d = 0

        keypoints_gt = data['part'] if 'part' in data else np.zeros((n, 24, 3))
        keypoints_op = data['openpose'] if 'openpose' in data else np.zeros((n, 25, 3))
        self.keypoints = np.concatenate([keypoints_op, keypoints_gt], axis=1).astype(np.float64)
        self.smpl_2dkps = data['smpl_2dkps'].astype(np.float64) if 'smpl_2dkps' in data else np.zeros((n, 24, 3))
        if 'gender' in data:
            self.gender = np.array([0 if str(g) == 'm' else 1 for g in data['gender']], dtype=np.int32)
        else:
            self.gender = -np.ones(n, dtype=np.int32)
        self.maskname = data.get('maskname')
        self.partname = data.get('partname')
        logger.info('%s: %d samples from %s', dataset, n, npz_path)

    def __len__(self) -> int:
        return len(self.imgname)

    def augm_params(self) -> tuple[int, np.ndarray, float, float]:
        """Draw ``(flip, pixel_noise (3,), rot_deg, scale_factor)`` (identity when not augmenting)."""
        flip, pn, rot, sc = 0, np.ones(3), 0.0, 1.0
        if self.is_train and self.use_augmentation:
            opt = self.options
            if np.random.uniform() <= 0.5:
                flip = 1
            pn = np.random.uniform(1 - opt.noise_factor, 1 + opt.noise_factor, 3)
            rot = min(2 * opt.rot_factor, max(-2 * opt.rot_factor, np.random.randn() * opt.rot_factor))
            sc = min(1 + opt.scale_factor, max(1 - opt.scale_factor, np.random.randn() * opt.scale_factor + 1))
            if np.random.uniform() <= 0.6:
                rot = 0.0
        return flip, pn, rot, sc

    def rgb_processing(self, img: np.ndarray, center: np.ndarray, scale: float, rot: float, flip: int,
                       pn: np.ndarray) -> np.ndarray:
        """Crop, rotate, flip and colour-scale an RGB image; returns (3, res, res) float in [0, 1]."""
        res = self.options.img_res
        img = imutils.crop(img, center, scale, [res, res], rot=rot)
        if flip:
            img = imutils.flip_img(img)
        img = np.clip(img * pn[None, None, :], 0, 255)
        return np.transpose(img.astype(np.float32), (2, 0, 1)) / 255.0

    def j2d_processing(self, kp: np.ndarray, center: np.ndarray, scale: float, rot: float, flip: int) -> np.ndarray:
        """Map (J, 3) pixel keypoints into the crop, normalised to [-1, 1] (integer-truncated, 1-based)."""
        res = self.options.img_res
        kp = kp.copy()
        for i in range(len(kp)):
            kp[i, 0:2] = imutils.transform(kp[i, 0:2] + 1, center, scale, [res, res], rot=rot)
        kp[:, :-1] = 2.0 * kp[:, :-1] / res - 1.0
        if flip:
            kp = imutils.flip_kp(kp)
        return kp.astype(np.float32)

    @staticmethod
    def j3d_processing(joints_3d: np.ndarray, rot: float, flip: int) -> np.ndarray:
        """Rotate (J, 4) 3D joints in-plane by ``-rot`` degrees about z and mirror them if flipped."""
        joints_3d = joints_3d.copy()
        if rot != 0:
            rot_rad = -rot * np.pi / 180
            sn, cs = np.sin(rot_rad), np.cos(rot_rad)
            rot_mat = np.array([[cs, -sn, 0], [sn, cs, 0], [0, 0, 1]])
            joints_3d[:, :-1] = joints_3d[:, :-1] @ rot_mat.T
        if flip:
            joints_3d = imutils.flip_kp(joints_3d)
        return joints_3d.astype(np.float32)

    @staticmethod
    def pose_processing(pose_aa: np.ndarray, rot: float, flip: int) -> np.ndarray:
        """Rotate the global orientation of a (72,) axis-angle pose and mirror the pose if flipped."""
        pose_aa = pose_aa.copy()
        pose_aa[:3] = imutils.rot_aa(pose_aa[:3], rot)
        if flip:
            pose_aa = imutils.flip_pose(pose_aa)
        return pose_aa.astype(np.float32)

    def read_image(self, index: int) -> tuple[np.ndarray, str]:
        """Read sample ``index`` as an (H, W, 3) float32 RGB array; returns it and its full path."""
        import cv2

        path = os.path.join(self.img_dir, str(self.imgname[index]))
        img = cv2.imread(path) if os.path.isfile(path) else None  # (no OpenCV warning for a missing file)
        if img is None:
            raise FileNotFoundError(f'image of sample {index} of {self.dataset!r} not found or unreadable: {path} '
                                    f'(image root {self.img_dir!r})')
        return img[:, :, ::-1].astype(np.float32), path

    def __getitem__(self, index: int) -> dict:
        if index in self.bad_rows:
            raise BadSampleError(f'{self.npz_path}: sample {index} has {self.bad_rows[index]}',
                                 'fix or drop that row of the annotation file')
        center = self.center[index].copy()
        scale = float(self.scale[index])
        flip, pn, rot, sc = self.augm_params()
        img, path = self.read_image(index)
        orig_shape = np.array(img.shape[:2])

        if self.has_smpl[index]:
            pose, betas = self.pose[index].copy(), self.betas[index].copy()
        else:
            pose, betas = np.zeros(72), np.zeros(10)

        item = {
            'img': normalize_img(torch.from_numpy(self.rgb_processing(img, center, sc * scale, rot, flip, pn))),
            'pose': torch.from_numpy(self.pose_processing(pose, rot, flip)),
            'betas': torch.from_numpy(betas.astype(np.float32)),
            'imgname': path,
            'smpl_2dkps': torch.from_numpy(self.smpl_2dkps[index].astype(np.float32)),
            'keypoints': torch.from_numpy(self.j2d_processing(self.keypoints[index], center, sc * scale, rot, flip)),
            'has_smpl': float(self.has_smpl[index]),
            'has_pose_3d': float(self.has_pose_3d),
            'scale': float(sc * scale),
            'center': center.astype(np.float32),
            'orig_shape': orig_shape,
            'is_flipped': flip,
            'rot_angle': np.float32(rot),
            'gender': int(self.gender[index]),
            'sample_index': index,
            'dataset_name': self.dataset,
            'maskname': str(self.maskname[index]) if self.maskname is not None else '',
            'partname': str(self.partname[index]) if self.partname is not None else '',
        }
        if self.has_pose_3d:
            item['pose_3d'] = torch.from_numpy(self.j3d_processing(self.pose_3d[index], rot, flip))
        else:
            item['pose_3d'] = torch.zeros(24, 4)
        return item
