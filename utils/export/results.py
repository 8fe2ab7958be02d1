"""The demo's result files: ``output.pkl`` (the original demo's per-person dict), ``output.npz`` (every
row stacked, portable) and Wavefront ``.obj`` meshes. Cameras and units are described in docs/demo.md.

May import what `utils.export` allows (numpy, the standard library, `core.constants`, top-level `utils`).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.constants import FOCAL_LENGTH
from utils.cli import atomic_write

# Per-person fields of output.pkl, as in the original demo.
OUTPUT_FIELDS = ('pred_cam', 'orig_cam', 'verts', 'pose', 'betas', 'joints3d', 'joints2d', 'bboxes', 'frame_ids')


def save_output_pkl(results: dict[int, dict], path: str | os.PathLike) -> None:
    """Write ``{person_id: {field: array}}`` as a plain pickle (readable with `pickle`, no joblib)."""
    atomic_write(path, lambda f: pickle.dump(results, f, protocol=4))


def load_output_pkl(path: str | os.PathLike) -> dict[int, dict]:
    """Read an output.pkl written by this demo (plain pickle) or by the original (joblib, if installed).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a result file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'result file not found: {path}')
    try:
        with open(path, 'rb') as f:
            results = pickle.load(f)
    except Exception as err:
        try:
            import joblib
        except ImportError:
            raise ValueError(f'{path} is not a plain pickle; if the original PyMAF wrote it, pip install joblib '
                             f'to read it ({type(err).__name__}: {err})') from err
        results = joblib.load(path)
    if not isinstance(results, dict) or not all(isinstance(v, dict) and 'verts' in v for v in results.values()):
        raise ValueError(f'{path} is not a demo result file ({{person_id: {{"verts", "orig_cam", ...}}}})')
    return results


def save_output_npz(results: dict[int, dict], path: str | os.PathLike, img_width: int, img_height: int,
                    fps: float, faces: np.ndarray | None = None, frame_names: Sequence[str] | None = None) -> None:
    """Write the portable result file: every person's rows stacked, one row per (person, frame).

    Arrays (M = total rows): ``person_ids`` (M,), ``frame_ids`` (M,), ``pred_cam`` (M, 3),
    ``orig_cam`` (M, 4), ``cam_t`` (M, 3), ``verts`` (M, 6890, 3), ``pose`` (M, 72), ``betas`` (M, 10),
    ``joints3d`` (M, 49, 3), ``kp2d_px`` (M, 49, 2), ``bboxes`` (M, 4); ``keypoints_2d`` (M, 33, 3) and
    ``keypoints_3d`` (M, 33, 3) when every person has them; scalars ``img_width``, ``img_height``, ``fps``,
    ``focal_length``; ``faces`` (F, 3) and ``frame_names`` (T,) when given.
    """
    fields = ('frame_ids', 'pred_cam', 'orig_cam', 'cam_t', 'verts', 'pose', 'betas', 'joints3d', 'kp2d_px',
              'bboxes')
    pids = sorted(results)
    if pids and all(results[p].get('keypoints_2d') is not None for p in pids):
        fields += ('keypoints_2d', 'keypoints_3d')
    arrays: dict[str, np.ndarray] = {}
    for field_name in fields:
        parts = [np.asarray(results[p][field_name]) for p in pids if results[p].get(field_name) is not None]
        arrays[field_name] = np.concatenate(parts) if parts else np.zeros((0,))
    arrays['person_ids'] = np.concatenate(
        [np.full(len(results[p]['frame_ids']), p, np.int64) for p in pids]) if pids else np.zeros(0, np.int64)
    arrays.update(img_width=np.int64(img_width), img_height=np.int64(img_height), fps=np.float64(fps),
                  focal_length=np.float64(FOCAL_LENGTH))
    if faces is not None:
        arrays['faces'] = np.asarray(faces, dtype=np.int64)
    if frame_names is not None:
        arrays['frame_names'] = np.asarray(list(frame_names), dtype=str)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_obj(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write one mesh as Wavefront .obj (vertices in metres, faces 1-based)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['v {:.6f} {:.6f} {:.6f}'.format(*v) for v in np.asarray(verts, dtype=np.float64)]
    lines += ['f {:d} {:d} {:d}'.format(*f) for f in np.asarray(faces, dtype=np.int64) + 1]
    path.write_text('\n'.join(lines) + '\n')
