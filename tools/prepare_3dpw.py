"""Build the 3DPW evaluation file (``3dpw_test.npz``) from the official 3DPW sequence pickles.

Reads ``<3DPW root>/sequenceFiles/<split>/*.pkl`` as released by the 3DPW authors and writes the
SPIN-format file the original evaluated on: one sample per (person, frame) with a valid camera pose,
a square box around the visible 2D keypoints enlarged by 1.2, the SMPL pose with its global
orientation rotated into the camera frame, the first 10 betas and the person's gender.

    python tools/prepare_3dpw.py --dataset_root data/datasets/3DPW
    python tools/prepare_3dpw.py --dataset_root /path/to/3DPW --split validation --out_file 3dpw_val.npz
"""
from __future__ import annotations

import argparse
import glob
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import cli  # noqa: E402 (after the path set-up for `python tools/prepare_3dpw.py`)

# Box side = BOX_ENLARGE * extent of the visible keypoints (SPIN's preprocessing of 3DPW).
BOX_ENLARGE = 1.2


SEQUENCE_KEYS = ('sequence', 'poses', 'betas', 'poses2d', 'cam_poses', 'campose_valid', 'genders')


def load_sequence(path: str) -> dict:
    """Load one official 3DPW sequence pickle (Python 2 pickles: latin1 decoding of numpy arrays), checked.

    Raises:
        DataFileError: not a pickle, or not a 3DPW sequence (fields missing, shapes that disagree).
    """
    try:
        with open(path, 'rb') as f:
            seq = pickle.load(f, encoding='latin1')
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError) as err:
        raise cli.DataFileError(f'{path} is not a readable 3DPW sequence pickle ({type(err).__name__})',
                                'use the sequenceFiles of the official 3DPW release') from None
    check_sequence(seq, path)
    return seq


def check_sequence(seq, path: str) -> None:
    """The fields `sequence_samples` reads must be there with consistent shapes; else `DataFileError`."""
    fix = 'use the sequenceFiles of the official 3DPW release'
    if not isinstance(seq, dict):
        raise cli.DataFileError(f'{path} holds a {type(seq).__name__}, not a 3DPW sequence dict', fix)
    missing = [k for k in SEQUENCE_KEYS if k not in seq]
    if missing:
        raise cli.DataFileError(f'{path} lacks the 3DPW field(s) {", ".join(missing)}', fix)
    try:
        cam_poses = np.asarray(seq['cam_poses'], dtype=np.float64)
        people = len(seq['poses'])
        per_person = {k: len(seq[k]) for k in ('betas', 'poses2d', 'campose_valid', 'genders')}
    except (TypeError, ValueError) as err:
        raise cli.DataFileError(f'{path}: malformed 3DPW fields ({" ".join(str(err).split())})', fix) from None
    if cam_poses.ndim != 3 or cam_poses.shape[1:] != (4, 4):
        raise cli.DataFileError(f'{path}: cam_poses has shape {cam_poses.shape}, expected (frames, 4, 4)', fix)
    frames = len(cam_poses)
    bad_counts = [k for k, n in per_person.items() if n != people]
    if bad_counts:
        raise cli.DataFileError(f'{path}: {", ".join(bad_counts)} list(s) a different number of people than '
                                f'poses ({people})', fix)
    expected = {'poses': (frames, 72), 'poses2d': (frames, 3, 18), 'campose_valid': (frames,)}
    for person in range(people):
        for key, shape in expected.items():
            try:
                arr = np.asarray(seq[key][person], dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.zeros(0)
            if arr.shape != shape:
                raise cli.DataFileError(f'{path}: {key}[{person}] has shape {arr.shape}, expected {shape}', fix)
            if not np.isfinite(arr).all():
                raise cli.DataFileError(f'{path}: {key}[{person}] holds non-finite values', fix)
        try:
            betas = np.asarray(seq['betas'][person], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            betas = np.zeros(0)
        if len(betas) < 10 or not np.isfinite(betas[:10]).all():
            raise cli.DataFileError(f'{path}: betas[{person}] needs at least 10 finite values', fix)
    if not np.isfinite(cam_poses).all():
        raise cli.DataFileError(f'{path}: cam_poses holds non-finite values', fix)


def _rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rotvec).as_matrix()


def _matrix_to_rotvec(rotmat: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rotmat).as_rotvec()


def box_from_keypoints(keypoints_2d: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Centre (px) and scale (side / 200) of the square box around the visible keypoints.

    Args:
        keypoints_2d: (K, 3) pixel keypoints with a confidence column; confidence > 0 means visible.

    Returns:
        ``(center (2,), scale)`` or None if no keypoint is visible.
    """
    visible = keypoints_2d[keypoints_2d[:, 2] > 0]
    if len(visible) == 0:
        return None
    lo, hi = visible[:, :2].min(axis=0), visible[:, :2].max(axis=0)
    return (lo + hi) / 2, BOX_ENLARGE * float((hi - lo).max()) / 200


def sequence_samples(seq: dict) -> dict[str, list]:
    """Per-sample annotation lists of one sequence (see the module docstring for the rules).

    Args:
        seq: a loaded 3DPW sequence pickle with keys ``sequence``, ``poses`` (P x (F, 72)),
            ``betas`` (P x (>=10,)), ``poses2d`` (P x (F, 3, 18)), ``cam_poses`` (F, 4, 4),
            ``campose_valid`` (P x (F,)) and ``genders`` (P,).

    Returns:
        dict of lists ``imgname``, ``center``, ``scale``, ``pose``, ``shape``, ``gender``.
    """
    out: dict[str, list] = {k: [] for k in ('imgname', 'center', 'scale', 'pose', 'shape', 'gender')}
    seq_name = str(seq['sequence'])
    cam_poses = np.asarray(seq['cam_poses'])
    for person, poses in enumerate(seq['poses']):
        poses = np.asarray(poses, dtype=np.float64)
        valid = np.asarray(seq['campose_valid'][person]).astype(bool)
        betas = np.asarray(seq['betas'][person], dtype=np.float64)[:10]
        keypoints = np.asarray(seq['poses2d'][person], dtype=np.float64)
        gender = str(seq['genders'][person])
        for frame in np.nonzero(valid)[0]:
            box = box_from_keypoints(keypoints[frame].T)
            if box is None:
                continue
            pose = poses[frame].copy()
            world_to_cam = cam_poses[frame][:3, :3]
            pose[:3] = _matrix_to_rotvec(world_to_cam @ _rotvec_to_matrix(pose[:3]))
            out['imgname'].append(f'imageFiles/{seq_name}/image_{frame:05d}.jpg')
            out['center'].append(box[0])
            out['scale'].append(box[1])
            out['pose'].append(pose)
            out['shape'].append(betas)
            out['gender'].append(gender)
    return out


def build_3dpw_annotations(sequence_dir: str) -> dict[str, np.ndarray]:
    """SPIN-format arrays for every sequence pickle in ``sequence_dir`` (sorted by file name).

    Raises:
        FileNotFoundError: no ``.pkl`` file in ``sequence_dir``.
    """
    files = sorted(glob.glob(os.path.join(sequence_dir, '*.pkl')))
    if not files:
        raise FileNotFoundError(f'no 3DPW sequence pickles in {sequence_dir}; download 3DPW from '
                                'https://virtualhumans.mpi-inf.mpg.de/3DPW/ and pass its root as --dataset_root')
    merged: dict[str, list] = {}
    for path in files:
        for key, values in sequence_samples(load_sequence(path)).items():
            merged.setdefault(key, []).extend(values)
    return {
        'imgname': np.array(merged['imgname']),
        'center': np.array(merged['center'], dtype=np.float64).reshape(-1, 2),
        'scale': np.array(merged['scale'], dtype=np.float64),
        'pose': np.array(merged['pose'], dtype=np.float64).reshape(-1, 72),
        'shape': np.array(merged['shape'], dtype=np.float64).reshape(-1, 10),
        'gender': np.array(merged['gender']),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset_root', required=True, help='3DPW root holding sequenceFiles/ and imageFiles/')
    parser.add_argument('--split', default='test', choices=['train', 'validation', 'test'],
                        help='which sequenceFiles/ subfolder to convert')
    parser.add_argument('--out_file', default=None,
                        help='output npz (default: <data root>/dataset_extras/3dpw_<split>.npz)')
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> str:
    out_file = args.out_file
    if out_file is None:
        from core import path_config

        out_file = os.path.join(path_config.DATASET_NPZ_PATH, f'3dpw_{args.split}.npz')
    if not out_file.endswith('.npz'):
        out_file += '.npz'
    cli.check_input_dir(args.dataset_root, '--dataset_root', '3DPW root')
    cli.check_writable_file(out_file, '--out_file')
    arrays = build_3dpw_annotations(os.path.join(args.dataset_root, 'sequenceFiles', args.split))
    if len(arrays['imgname']) == 0:
        raise cli.DataFileError(f'the 3DPW sequences of {args.split} hold no frame with a valid camera and visible '
                                'keypoints: nothing to write', 'check --dataset_root and --split')
    cli.atomic_write(out_file, lambda f: np.savez(f, **arrays))
    print(f'wrote {len(arrays["imgname"])} samples to {out_file}')
    return out_file


if __name__ == '__main__':
    sys.exit(cli.run_main(lambda: main(parse_args()), prog='prepare_3dpw'))
