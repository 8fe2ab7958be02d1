"""Procedural meshes for tests and benchmarks, e.g. a UV sphere with exactly SMPL's vertex and face counts."""
from __future__ import annotations

import numpy as np

# A UV sphere with 84 latitude rings of 82 vertices plus two poles has SMPL's sizes: 6890 vertices and
# 13776 faces.
SMPL_LIKE_RINGS = 84
SMPL_LIKE_SEGMENTS = 82


def uv_sphere(
    num_rings: int = SMPL_LIKE_RINGS, num_segments: int = SMPL_LIKE_SEGMENTS, radius: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere centred at the origin, faces counter-clockwise seen from outside.

    Args:
        num_rings: number of latitude rings between the poles (>= 1).
        num_segments: vertices per ring (>= 3).
        radius: sphere radius.

    Returns:
        ``(verts (num_rings * num_segments + 2, 3) float32, faces (2 * num_segments * num_rings, 3)
        int64)``. Vertex 0 is the pole at -y, the last vertex the pole at +y; ring r (0-based, from -y)
        holds vertices ``1 + r * num_segments ...``.
    """
    if num_rings < 1 or num_segments < 3:
        raise ValueError(f'need num_rings >= 1 and num_segments >= 3, got {num_rings}, {num_segments}')
    polar = np.pi * (np.arange(num_rings) + 1) / (num_rings + 1)  # from the -y pole
    azimuth = 2 * np.pi * np.arange(num_segments) / num_segments
    ring_y = -np.cos(polar)[:, None].repeat(num_segments, 1)
    ring_r = np.sin(polar)[:, None]
    ring_x = ring_r * np.cos(azimuth)[None]
    ring_z = ring_r * np.sin(azimuth)[None]
    ring_verts = np.stack([ring_x, ring_y, ring_z], axis=-1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, -1.0, 0.0]], ring_verts, [[0.0, 1.0, 0.0]]]) * radius

    seg = np.arange(num_segments)
    nxt = (seg + 1) % num_segments
    bottom_pole, top_pole = 0, len(verts) - 1
    faces = [np.stack([np.full(num_segments, bottom_pole), 1 + seg, 1 + nxt], axis=1)]
    for r in range(num_rings - 1):
        a, b = 1 + r * num_segments + seg, 1 + r * num_segments + nxt
        c, d = a + num_segments, b + num_segments
        faces.append(np.stack([a, c, b], axis=1))
        faces.append(np.stack([b, c, d], axis=1))
    last = 1 + (num_rings - 1) * num_segments
    faces.append(np.stack([last + seg, np.full(num_segments, top_pole), last + nxt], axis=1))
    return verts.astype(np.float32), np.concatenate(faces).astype(np.int64)
