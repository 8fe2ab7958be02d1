"""Mesh downsampling matrices in GraphCMR's format (6890 -> 1723 -> 431) by real decimation.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from tools.standin_body.constants import DOWNSAMPLED_SIZES
from tools.standin_body.mesh import adjacency, barycentric_map, decimate_to

logger = logging.getLogger('make_standin_body')


def downsampling(verts: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """A, U, D object arrays for 6890 -> 1723 -> 431 by quadric decimation.

    D[i] selects, for every coarse vertex, one fine vertex (rows are one-hot, so they sum to 1); the coarse
    mesh is re-placed onto those vertices. U[i] writes every fine vertex as the barycentric combination of
    its closest point on the coarse surface.
    """
    a_list, u_list, d_list = [adjacency(faces, len(verts))], [], []
    fine_v, fine_f = verts, faces
    for size in DOWNSAMPLED_SIZES:
        coarse_v, coarse_f = decimate_to(fine_v, fine_f, size, closed=False)
        tree = cKDTree(fine_v)
        _, near = tree.query(coarse_v, k=16)
        taken: set[int] = set()
        sel = np.zeros(size, dtype=np.int64)
        for i in np.argsort(tree.query(coarse_v)[0]):
            sel[i] = next(int(n) for n in near[i] if int(n) not in taken)
            taken.add(int(sel[i]))
        coarse_v = fine_v[sel]
        d_mat = sp.csc_matrix((np.ones(size), (np.arange(size), sel)), shape=(size, len(fine_v)))
        u_mat = barycentric_map(fine_v, coarse_v, coarse_f).tocsc()
        d_list.append(d_mat)
        u_list.append(u_mat)
        a_list.append(adjacency(coarse_f, size))
        fine_v, fine_f = coarse_v, coarse_f

    def objects(items: list) -> np.ndarray:
        arr = np.empty(len(items), dtype=object)
        for i, m in enumerate(items):
            arr[i] = m
        return arr
    return {'A': objects(a_list), 'U': objects(u_list), 'D': objects(d_list)}
