"""Reader of the DensePose UV data that ties DensePose body parts and UV coordinates to the SMPL mesh.

The file is ``UV_Processed.mat`` from the DensePose UV data tarball (``densepose_uv_data.tar.gz``) that
``fetch_data.sh`` downloads; it belongs in ``data/UV_data/``. Its fields:

- ``All_FaceIndices`` (13774, 1): body part id (1..24) of each DensePose face;
- ``All_Faces`` (13774, 3): the DensePose faces, 1-based indices into the DensePose vertices;
- ``All_U_norm``, ``All_V_norm`` (7829, 1): U and V coordinate in [0, 1] of each DensePose vertex;
- ``All_vertices`` (1, 7829): the SMPL vertex (1-based) each DensePose vertex copies (DensePose duplicates
  SMPL vertices along UV seams).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

NUM_PARTS = 24


@dataclass(frozen=True)
class DensePoseUV:
    """DensePose UV data with 0-based indices.

    Attributes:
        face_part: (F_dp,) int64 body part id 1..24 of each DensePose face (F_dp = 13774 for SMPL).
        faces: (F_dp, 3) int64 0-based DensePose vertex indices of each face.
        u_norm: (V_dp,) float32 U coordinate in [0, 1] of each DensePose vertex (V_dp = 7829).
        v_norm: (V_dp,) float32 V coordinate in [0, 1] of each DensePose vertex.
        dp_to_smpl: (V_dp,) int64 0-based SMPL vertex of each DensePose vertex.
    """

    face_part: np.ndarray
    faces: np.ndarray
    u_norm: np.ndarray
    v_norm: np.ndarray
    dp_to_smpl: np.ndarray

    def face_texture(self) -> np.ndarray:
        """Per-face IUV colour as the conference-era renderer used it.

        Returns:
            (F_dp, 3) float32: (part id / 24, mean U of the face's corners, mean V of its corners).
        """
        part = self.face_part / NUM_PARTS
        u_mean, v_mean = self.u_norm[self.faces].mean(1), self.v_norm[self.faces].mean(1)
        return np.stack([part, u_mean, v_mean], axis=1).astype(np.float32)

    def vertex_part(self) -> np.ndarray:
        """Part id of each DensePose vertex, taken from the first face that contains it (0 if none).

        Returns:
            (V_dp,) int64.
        """
        part = np.zeros(len(self.u_norm), dtype=np.int64)
        flat_verts = self.faces.reshape(-1)
        flat_parts = np.repeat(self.face_part, 3)
        # Assign in reverse so that the first face containing a vertex is written last and wins.
        part[flat_verts[::-1]] = flat_parts[::-1]
        return part


def load_densepose_uv(path: str | os.PathLike) -> DensePoseUV:
    """Read and check ``UV_Processed.mat``.

    Args:
        path: the .mat file (the configured one is ``core.path_config.UV_PROCESSED``,
            ``data/UV_data/UV_Processed.mat`` under the data root, which the env var PYMAF_DATA_DIR can move).

    Returns:
        The data with 0-based indices.

    Raises:
        FileNotFoundError: the file is missing (the message says where to get it and where to put it).
        ValueError: the file lacks a field or its fields disagree in size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f'DensePose UV data not found at {path}. It is UV_Processed.mat from the DensePose UV data '
            'tarball densepose_uv_data.tar.gz '
            '(https://dl.fbaipublicfiles.com/densepose/densepose_uv_data.tar.gz, which fetch_data.sh '
            'downloads). Extract it so that the file is data/UV_data/UV_Processed.mat under the data root '
            '(set PYMAF_DATA_DIR to use another data root).'
        )
    from scipy.io import loadmat

    mat = loadmat(str(path))
    required = ('All_FaceIndices', 'All_Faces', 'All_U_norm', 'All_V_norm', 'All_vertices')
    missing = [k for k in required if k not in mat]
    if missing:
        raise ValueError(f'{path} lacks the field(s) {missing}; is it the DensePose UV_Processed.mat?')
    face_part = np.asarray(mat['All_FaceIndices']).reshape(-1).astype(np.int64)
    faces = np.asarray(mat['All_Faces']).astype(np.int64) - 1
    u_norm = np.asarray(mat['All_U_norm']).reshape(-1).astype(np.float32)
    v_norm = np.asarray(mat['All_V_norm']).reshape(-1).astype(np.float32)
    dp_to_smpl = np.asarray(mat['All_vertices']).reshape(-1).astype(np.int64) - 1
    num_dp_verts = len(u_norm)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) != len(face_part):
        raise ValueError(f'{path}: All_Faces {faces.shape} and All_FaceIndices {face_part.shape} disagree')
    if len(v_norm) != num_dp_verts or len(dp_to_smpl) != num_dp_verts:
        raise ValueError(
            f'{path}: All_U_norm ({num_dp_verts}), All_V_norm ({len(v_norm)}) and All_vertices '
            f'({len(dp_to_smpl)}) must have one entry per DensePose vertex'
        )
    if faces.size and (faces.min() < 0 or faces.max() >= num_dp_verts):
        raise ValueError(f'{path}: All_Faces indices must lie in 1..{num_dp_verts}')
    if face_part.size and (face_part.min() < 1 or face_part.max() > NUM_PARTS):
        raise ValueError(f'{path}: All_FaceIndices must lie in 1..{NUM_PARTS}')
    if dp_to_smpl.size and dp_to_smpl.min() < 0:
        raise ValueError(f'{path}: All_vertices must be 1-based SMPL vertex indices')
    logger.debug('Loaded DensePose UV data: %d faces, %d vertices', len(faces), num_dp_verts)
    return DensePoseUV(face_part, faces, u_norm, v_norm, dp_to_smpl)
