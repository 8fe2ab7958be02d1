"""Materialise the project's stand-in body model as a data folder in the official SMPL file formats.

SMPL's files need a registration and a non-commercial licence, so the project ships its own body model
(converted from the free anny model by ``tools/make_standin_body.py``) as compact sources under
``assets/standin/``. `ensure_standin` expands them into the layout and formats the real files have, so
every loader reads them exactly as it would read SMPL::

    target_dir/
        smpl/SMPL_NEUTRAL.pkl, SMPL_MALE.pkl, SMPL_FEMALE.pkl   (plain-numpy SMPL pickles)
        J_regressor_extra.npy (9, 6890), J_regressor_h36m.npy (17, 6890)
        smpl_mean_params.npz, mesh_downsampling.npz
        UV_data/UV_Processed.mat, UV_data/UV_symmetry_transforms.mat
        STANDIN.md

The model is NOT SMPL: same sizes and joint tree, different (free) data. Every file says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import pickle
import shutil
import tempfile

import numpy as np

logger = logging.getLogger(__name__)

ASSET_DIR = pathlib.Path(__file__).resolve().parents[1] / 'assets' / 'standin'
GENDERS = {'neutral': 'SMPL_NEUTRAL.pkl', 'male': 'SMPL_MALE.pkl', 'female': 'SMPL_FEMALE.pkl'}
COPIED_FILES = ('J_regressor_extra.npy', 'J_regressor_h36m.npy', 'smpl_mean_params.npz',
                'mesh_downsampling.npz', 'UV_data/UV_Processed.mat', 'STANDIN.md')
SOURCE_FILES = ('body_neutral.npz', 'body_male.npz', 'body_female.npz', 'body_common.npz') + COPIED_FILES
STAMP_NAME = 'standin_stamp.json'
NUM_POSE_BLEND = 207  # 23 joints x 9 rotation-matrix entries, as SMPL's posedirs
UV_TABLE_SIZE = 256
MIRRORED_U_PARTS = (1, 2)  # torso back/front: the mirror image flips U (charted over x); other parts map 1:1


def _sources_digest(asset_dir: pathlib.Path) -> str:
    digest = hashlib.sha1()
    for name in SOURCE_FILES:
        path = asset_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f'stand-in body source {path} is missing; restore assets/standin/ from git or rebuild it '
                'with `python -m tools.make_standin_body --out assets/standin` (needs `pip install anny`)')
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.')
    with os.fdopen(fd, 'wb') as fh:
        fh.write(data)
    os.replace(tmp, path)


def _atomic_copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix='.' + dst.name + '.')
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def smpl_dict(gender: str, asset_dir: pathlib.Path = ASSET_DIR) -> dict:
    """The stand-in model of ``gender`` as a dict shaped like a (chumpy-free) official SMPL pickle.

    Args:
        gender: 'neutral', 'male' or 'female'.
        asset_dir: folder with the compact sources.

    Returns:
        dict with ``v_template`` (6890, 3), ``shapedirs`` (6890, 3, 10), ``posedirs`` (6890, 3, 207) (zeros:
        the stand-in has no pose correctives), ``J_regressor`` scipy.sparse.csc_matrix (24, 6890),
        ``weights`` (6890, 24), ``kintree_table`` (2, 24), ``f`` (13776, 3) uint32, ``J`` (24, 3) (metres,
        y up, facing +z), plus ``standin`` True and ``standin_note``.
    """
    import scipy.sparse as sp
    if gender not in GENDERS:
        raise ValueError(f'gender must be one of {sorted(GENDERS)}, got {gender!r}')
    with np.load(asset_dir / f'body_{gender}.npz') as body, np.load(asset_dir / 'body_common.npz') as common:
        v_template = body['v_template'].astype(np.float64)
        shapedirs = body['shapedirs'].astype(np.float64)
        weights = common['weights'].astype(np.float64)
        j_regressor = sp.csc_matrix(common['J_regressor'].astype(np.float64))
        faces = common['faces'].astype(np.uint32)
        parents = common['parents'].astype(np.int64)
        note = str(common['note'])
    kintree = np.stack([parents, np.arange(len(parents))]).astype(np.int64)
    kintree[0, 0] = 4294967295  # SMPL stores the root's parent as uint32(-1)
    return {
        'v_template': v_template,
        'shapedirs': shapedirs,
        'posedirs': np.zeros((v_template.shape[0], 3, NUM_POSE_BLEND)),
        'J_regressor': j_regressor,
        'weights': weights,
        'kintree_table': kintree,
        'f': faces,
        'J': np.asarray(j_regressor @ v_template),
        'bs_style': 'lbs',
        'bs_type': 'lrotmin',
        'gender': gender,
        'standin': True,
        'standin_note': note,
    }


def uv_symmetry_transforms(num_parts: int = 24, size: int = UV_TABLE_SIZE) -> dict[str, np.ndarray | str]:
    """DensePose-format symmetry tables: 1 x 24 cells of (256, 256) arrays indexed [v_px, u_px].

    The stand-in charts each left part in mirrored coordinates, so a point at (U, V) on a part maps to
    (U, V) on its mirror part, except the torso halves (charted over x), where U becomes 1 - U.
    """
    grid_v, grid_u = np.meshgrid(np.arange(size) / (size - 1), np.arange(size) / (size - 1), indexing='ij')
    u_cells = np.empty((1, num_parts), dtype=object)
    v_cells = np.empty((1, num_parts), dtype=object)
    for p in range(num_parts):
        u_cells[0, p] = 1.0 - grid_u if (p + 1) in MIRRORED_U_PARTS else grid_u.copy()
        v_cells[0, p] = grid_v.copy()
    return {'U_transforms': u_cells, 'V_transforms': v_cells,
            'standin_note': 'STAND-IN body model UV symmetry tables (identity charts); not DensePose data.'}


def ensure_standin(target_dir: str | os.PathLike, asset_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Write (once) the complete stand-in data folder in the official formats into ``target_dir``.

    Idempotent: a stamp holding the digest of the sources makes later calls return at once; files are
    written atomically, so concurrent callers never read a half-written file.

    Args:
        target_dir: folder to fill (created if needed), e.g. ``data/standin``.
        asset_dir: compact sources; default ``assets/standin`` of this repository.

    Returns:
        ``target_dir`` as a Path.
    """
    import scipy.io
    target = pathlib.Path(target_dir)
    src = pathlib.Path(asset_dir) if asset_dir is not None else ASSET_DIR
    digest = _sources_digest(src)
    stamp = target / STAMP_NAME
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get('sources_sha1') == digest:
                return target
        except (OSError, ValueError):
            pass
    logger.info('writing the stand-in body model (not SMPL) into %s', target)
    for gender, filename in GENDERS.items():
        _atomic_write_bytes(target / 'smpl' / filename, pickle.dumps(smpl_dict(gender, src), protocol=2))
    for name in COPIED_FILES:
        _atomic_copy(src / name, target / name)
    sym_path = target / 'UV_data' / 'UV_symmetry_transforms.mat'
    fd, tmp = tempfile.mkstemp(dir=sym_path.parent, prefix='.' + sym_path.stem + '.', suffix='.mat')
    os.close(fd)
    scipy.io.savemat(tmp, uv_symmetry_transforms(), do_compression=True)
    os.replace(tmp, sym_path)
    _atomic_write_bytes(stamp, json.dumps({'sources_sha1': digest, 'standin': True}).encode())
    return target
