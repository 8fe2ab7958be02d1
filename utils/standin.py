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
        vertex_texture.npy, cube_parts.npy   (stand-in part colouring in SPIN's format, LSP part evaluation)
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
# Files computed at expansion time; bump the version when their content changes, so that old folders refresh.
GENERATED_FILES = ('UV_data/UV_symmetry_transforms.mat', 'vertex_texture.npy', 'cube_parts.npy')
GENERATOR_VERSION = 2
NUM_POSE_BLEND = 207  # 23 joints x 9 rotation-matrix entries, as SMPL's posedirs
UV_TABLE_SIZE = 256
MIRRORED_U_PARTS = (1, 2)  # torso back/front: the mirror image flips U (charted over x); other parts map 1:1
# The six LSP-style parts of the stand-in's part colouring (ids 1..6, 0 background), from its 24 DensePose
# parts (left = the body's left, +x). Hands go with the arms and feet with the legs; the neck is part of
# the DensePose head. This is the stand-in's own numbering; the order of SPIN's table is not documented.
LSP_PART_NAMES = ('head', 'torso', 'left arm', 'right arm', 'left leg', 'right leg')
DENSEPOSE_TO_LSP_PART = {
    23: 1, 24: 1,                                  # head right / left
    1: 2, 2: 2,                                    # torso back / front
    4: 3, 15: 3, 17: 3, 19: 3, 21: 3,              # left hand, upper and lower left arm (back, front)
    3: 4, 16: 4, 18: 4, 20: 4, 22: 4,              # right hand, upper and lower right arm
    5: 5, 8: 5, 10: 5, 12: 5, 14: 5,               # left foot, upper and lower left leg (back, front)
    6: 6, 7: 6, 9: 6, 11: 6, 13: 6,                # right foot, upper and lower right leg
}


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


def lsp_face_parts(faces: np.ndarray, dp_faces_smpl: np.ndarray, dp_face_part: np.ndarray) -> np.ndarray:
    """Six-part label (`LSP_PART_NAMES`) of every mesh face, from the DensePose part of the same face.

    A DensePose face is a mesh face whose corners are written as DensePose vertices; the few mesh faces
    DensePose leaves out take the most common part among the labelled faces that share a vertex with them.

    Args:
        faces: (F, 3) mesh faces.
        dp_faces_smpl: (F_dp, 3) DensePose faces as mesh vertex indices.
        dp_face_part: (F_dp,) DensePose part id 1..24 of each.

    Returns:
        (F,) int64 part ids 1..6.
    """
    merge = np.zeros(25, dtype=np.int64)
    for dp_part, part in DENSEPOSE_TO_LSP_PART.items():
        merge[dp_part] = part
    face_of = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    dp_to_face = np.array([face_of.get(tuple(sorted(f)), -1) for f in dp_faces_smpl.tolist()])
    if (dp_to_face < 0).any():
        raise ValueError(f'{int((dp_to_face < 0).sum())} DensePose faces are not faces of the mesh')
    parts = np.zeros(len(faces), dtype=np.int64)
    parts[dp_to_face] = merge[dp_face_part]
    while (parts == 0).any():
        vertex_votes = np.zeros((int(faces.max()) + 1, len(LSP_PART_NAMES) + 1), dtype=np.int64)
        labelled = parts > 0
        for k in range(3):
            np.add.at(vertex_votes, (faces[labelled, k], parts[labelled]), 1)
        missing = np.nonzero(~labelled)[0]
        votes = vertex_votes[faces[missing]].sum(axis=1)
        votes[:, 0] = 0
        if not votes.any():
            raise ValueError(f'{len(missing)} faces share no vertex with a labelled face')
        filled = votes.any(axis=1)
        parts[missing[filled]] = votes[filled].argmax(axis=1)
    return parts


def _write_part_tables(target: pathlib.Path, asset_dir: pathlib.Path) -> None:
    """Stand-in ``vertex_texture.npy`` and ``cube_parts.npy`` (SPIN's format) from the stand-in's DensePose parts."""
    from utils.densepose_methods import load_densepose_uv
    from utils.part_utils import encode_face_parts

    with np.load(asset_dir / 'body_common.npz') as common:
        faces = common['faces'].astype(np.int64)
    dp = load_densepose_uv(asset_dir / 'UV_data' / 'UV_Processed.mat')
    parts = lsp_face_parts(faces, dp.dp_to_smpl[dp.faces], dp.face_part)
    texture, cube = encode_face_parts(parts, num_parts=len(LSP_PART_NAMES))
    for name, array in (('vertex_texture.npy', texture), ('cube_parts.npy', cube)):
        path = target / name
        fd, tmp = tempfile.mkstemp(dir=target, prefix='.' + path.stem + '.', suffix='.npy')
        with os.fdopen(fd, 'wb') as fh:
            np.save(fh, array)
        os.replace(tmp, path)


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
    if stamp.is_file() and all((target / name).is_file() for name in COPIED_FILES + GENERATED_FILES):
        try:
            written = json.loads(stamp.read_text())
            if written.get('sources_sha1') == digest and written.get('generator') == GENERATOR_VERSION:
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
    _write_part_tables(target, src)
    _atomic_write_bytes(stamp, json.dumps({
        'sources_sha1': digest, 'generator': GENERATOR_VERSION, 'standin': True,
        'note': 'STAND-IN body model files (not SMPL); vertex_texture.npy and cube_parts.npy are the stand-in '
                'part colouring (parts: ' + ', '.join(LSP_PART_NAMES) + '), not SPIN\'s files'}).encode())
    return target
