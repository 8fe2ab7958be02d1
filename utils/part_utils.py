"""Body-part labels of the mesh faces and a renderer of part-id maps (the LSP 6-part evaluation).

The original (SPIN's ``PartRenderer``) paints every mesh face with a small RGB texture
(``vertex_texture.npy``, shape (1, F, T, T, T, 3), neural_renderer's layout), renders the colours without
lighting and reads each pixel's part id from a 3D table indexed by the quantised colour
(``cube_parts.npy``: ``part = cube[floor(100 r), floor(100 g), floor(100 b)]``, ids 1..6, 0 background),
masked by the silhouette. Here the same lookup is applied once per face (`face_parts_from_tables`) and the
renderer rasterises face indices and reads the face's part, which gives the same map without colour
interpolation or rounding at render time.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from core import constants

logger = logging.getLogger(__name__)

# Parts of the UP-3D/LSP labels: 6 body parts plus background (0).
NUM_PARTS = 6
# Colour quantisation of SPIN's lookup: cell index = floor(QUANT_STEPS * colour) per channel.
QUANT_STEPS = 100

_SOURCE_HINT = ("It is one of SPIN's data files (SPIN's fetch_data.sh downloads them with its data archive; "
                "GraphCMR's repository also carries them under data/). Put vertex_texture.npy and "
                "cube_parts.npy into the data root (data/, or $PYMAF_DATA_DIR; see core/path_config.py "
                "and data/README.md).")


def _load_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found at {path}. {_SOURCE_HINT}')
    return np.load(path)


def load_part_tables(vertex_texture_path: str | os.PathLike,
                     cube_parts_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read and check SPIN's part-colouring files.

    Args:
        vertex_texture_path: ``vertex_texture.npy``, (1, F, T, T, T, 3) RGB in [0, 1] per face texel.
        cube_parts_path: ``cube_parts.npy``, (Q_r, Q_g, Q_b) part id per quantised colour.

    Returns:
        ``(texture (F, T, T, T, 3) float32, cube (Q_r, Q_g, Q_b) int64)``.

    Raises:
        FileNotFoundError: a file is missing (the message says where to get it and where to put it).
        ValueError: a file has the wrong shape.
    """
    texture = _load_npy(vertex_texture_path, 'Part texture vertex_texture.npy')
    cube = _load_npy(cube_parts_path, 'Part lookup table cube_parts.npy')
    if texture.ndim == 6 and texture.shape[0] == 1:
        texture = texture[0]
    if texture.ndim != 5 or texture.shape[-1] != 3 or len(set(texture.shape[1:4])) != 1:
        raise ValueError(f'{vertex_texture_path}: expected a (1, F, T, T, T, 3) texture, got {texture.shape}')
    if cube.ndim != 3:
        raise ValueError(f'{cube_parts_path}: expected a 3D (R, G, B) lookup table, got shape {cube.shape}')
    return texture.astype(np.float32), np.rint(cube).astype(np.int64)


def lookup_parts(colours: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """Part ids of RGB colours through the quantised lookup table, as SPIN's ``get_parts``.

    The product ``100 * colour`` is taken in float32, as the original's renderer output is float32.

    Args:
        colours: (..., 3) RGB in [0, 1].
        cube: (Q_r, Q_g, Q_b) part id per colour cell.

    Returns:
        (...) int64 part ids.

    Raises:
        ValueError: a colour falls outside the table.
    """
    cells = np.floor(np.float32(QUANT_STEPS) * np.asarray(colours, dtype=np.float32)).astype(np.int64)
    if cells.min() < 0 or np.any(cells.max(axis=tuple(range(cells.ndim - 1))) >= np.array(cube.shape)):
        raise ValueError(f'colours quantise outside the lookup table of shape {cube.shape}')
    return cube[cells[..., 0], cells[..., 1], cells[..., 2]]


def face_parts_from_tables(texture: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """Part id of every face: the lookup of its texels (their most frequent id if they disagree).

    Args:
        texture: (F, T, T, T, 3) face textures (see `load_part_tables`).
        cube: (Q_r, Q_g, Q_b) lookup table.

    Returns:
        (F,) int64 part id per face (0..NUM_PARTS).
    """
    texel_parts = lookup_parts(texture, cube).reshape(len(texture), -1)
    first = texel_parts[:, 0]
    mixed = np.nonzero((texel_parts != first[:, None]).any(axis=1))[0]
    parts = first.copy()
    for f in mixed:
        parts[f] = np.bincount(texel_parts[f]).argmax()
    if len(mixed):
        logger.warning('%d of %d faces have texels of several parts; each takes its most frequent part',
                       len(mixed), len(texture))
    return parts


def encode_face_parts(face_parts: np.ndarray, num_parts: int = NUM_PARTS) -> tuple[np.ndarray, np.ndarray]:
    """Part-colouring tables in SPIN's format for given face labels (the inverse of `face_parts_from_tables`).

    Part p is coded by the base-L digits of p (L levels per channel, L**3 > num_parts) and painted with the
    colour at the centre of that quantisation cell, (digit + 0.5) / 100, so rendering and flooring recover
    the digit exactly; the table is (L, L, L) and maps unused codes (and black) to background.

    Args:
        face_parts: (F,) part id per face, 0..num_parts.
        num_parts: number of parts.

    Returns:
        ``(vertex_texture (1, F, 1, 1, 1, 3) float32, cube_parts (L, L, L) float32)``.
    """
    face_parts = np.asarray(face_parts, dtype=np.int64)
    if face_parts.min() < 0 or face_parts.max() > num_parts:
        raise ValueError(f'face parts must lie in 0..{num_parts}')
    levels = 2
    while levels ** 3 <= num_parts:
        levels += 1
    codes = np.arange(num_parts + 1)
    digits = np.stack([codes // levels ** 2, codes // levels % levels, codes % levels], axis=1)
    cube = np.zeros((levels,) * 3, dtype=np.float32)
    cube[digits[:, 0], digits[:, 1], digits[:, 2]] = codes
    colours = ((digits + 0.5) / QUANT_STEPS).astype(np.float32)
    texture = colours[face_parts].reshape(1, len(face_parts), 1, 1, 1, 3)
    return texture, cube


def load_face_parts(vertex_texture_path: str | os.PathLike, cube_parts_path: str | os.PathLike,
                    num_faces: int | None = None) -> torch.Tensor:
    """Part id of every mesh face from SPIN's two files.

    Args:
        vertex_texture_path, cube_parts_path: see `load_part_tables`.
        num_faces: faces of the body model the labels are for (checked when given).

    Returns:
        (F,) long tensor, part ids 0..6.
    """
    texture, cube = load_part_tables(vertex_texture_path, cube_parts_path)
    if num_faces is not None and len(texture) != num_faces:
        raise ValueError(f'{vertex_texture_path} colours {len(texture)} faces but the body model has {num_faces}; '
                         'the part files must belong to the body model in use (the stand-in has its own)')
    return torch.from_numpy(face_parts_from_tables(texture, cube))


def crop_camera_translation(cam_crop: torch.Tensor, focal_length: float = constants.FOCAL_LENGTH,
                            res: int = constants.IMG_RES) -> torch.Tensor:
    """Translation of the perspective camera that stands for a weak-perspective crop camera.

    Args:
        cam_crop: (B, 3) weak-perspective camera [s, tx, ty] of the res x res crop (normalised units).
        focal_length: focal length in pixels.
        res: crop side in pixels.

    Returns:
        (B, 3) t = [tx, ty, 2 f / (res s)], metres.
    """
    depth = 2 * focal_length / (res * cam_crop[:, 0] + 1e-9)
    return torch.stack([cam_crop[:, 1], cam_crop[:, 2], depth], dim=-1)


def rasterize_pinhole(points_cam: torch.Tensor, faces: torch.Tensor, focal_length: float, height: int,
                      width: int) -> torch.Tensor:
    """Visible face per pixel of meshes seen by a pinhole camera with its principal point at the centre.

    Args:
        points_cam: (B, V, 3) vertices in the camera frame (x right, y down, z forward), metres.
        faces: (F, 3) vertex indices.
        focal_length: focal length in pixels.
        height, width: image size in pixels.

    Returns:
        (B, H, W) long face index, -1 for background.
    """
    from utils.render.rasterizer import rasterize

    centre = points_cam.new_tensor([width / 2, height / 2])
    verts_px = torch.cat([focal_length * points_cam[..., :2] / points_cam[..., 2:] + centre,
                          points_cam[..., 2:]], dim=-1)
    face_idx, _, _ = rasterize(verts_px.float(), faces.to(points_cam.device), height, width)
    return face_idx


def render_face_index(verts: torch.Tensor, cam_crop: torch.Tensor, faces: torch.Tensor,
                      res: int = constants.IMG_RES) -> torch.Tensor:
    """Visible face per pixel of the res x res crop, seen by the crop's camera (f = 5000 px).

    Args:
        verts: (B, V, 3) vertices, metres, camera axes.
        cam_crop: (B, 3) weak-perspective crop camera [s, tx, ty].
        faces: (F, 3) faces.
        res: crop side in pixels.

    Returns:
        (B, res, res) long face index, -1 for background.
    """
    points = verts + crop_camera_translation(cam_crop, constants.FOCAL_LENGTH, res)[:, None]
    return rasterize_pinhole(points, faces, constants.FOCAL_LENGTH, res, res)


def parts_of_faces(face_idx: torch.Tensor, face_parts: torch.Tensor) -> torch.Tensor:
    """Part-id map from a face-index map.

    Args:
        face_idx: (B, H, W) long face index, -1 for background.
        face_parts: (F,) part id per face.

    Returns:
        (B, H, W) long part ids, 0 for background.
    """
    face_parts = face_parts.to(face_idx.device)
    return torch.where(face_idx >= 0, face_parts[face_idx.clamp(min=0)], torch.zeros_like(face_idx))


def render_part_maps(verts: torch.Tensor, cam_crop: torch.Tensor, faces: torch.Tensor, face_parts: torch.Tensor,
                     res: int = constants.IMG_RES) -> torch.Tensor:
    """Part-id maps of the crop, as SPIN's ``PartRenderer`` (mesh at the crop camera, no lighting).

    Args:
        verts: (B, V, 3) vertices, metres, camera axes.
        cam_crop: (B, 3) weak-perspective crop camera [s, tx, ty].
        faces: (F, 3) faces.
        face_parts: (F,) part id per face (`load_face_parts`).
        res: crop side in pixels.

    Returns:
        (B, res, res) long part ids 1..6, 0 for background.
    """
    return parts_of_faces(render_face_index(verts, cam_crop, faces, res), face_parts)
