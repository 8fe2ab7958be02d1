"""Mesh surgery: decimation to exact vertex counts, edge splits and flips, relaxation onto a surface, barycentric
maps.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import scipy.sparse as sp
import torch

from utils.geometry import vertex_normals

logger = logging.getLogger('make_standin_body')


def check_closed_genus0(verts: np.ndarray, faces: np.ndarray) -> None:
    """Raise if (verts, faces) is not a closed, consistently oriented, genus-0 triangle mesh."""
    import trimesh
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.euler_number == 2):
        raise RuntimeError(f'mesh is not a closed genus-0 surface: watertight={mesh.is_watertight} '
                           f'winding={mesh.is_winding_consistent} euler={mesh.euler_number}')
    if len(np.unique(faces)) != len(verts):
        raise RuntimeError('mesh has unreferenced vertices')


def split_longest_edges(verts: np.ndarray, faces: np.ndarray, num_verts: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the longest edge (midpoint, both adjacent faces in two) until the mesh has num_verts vertices."""
    verts, faces = verts.copy(), faces.copy()
    while len(verts) < num_verts:
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        lengths = np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1)
        a, b = edges[np.argmax(lengths)]
        new = len(verts)
        verts = np.vstack([verts, 0.5 * (verts[a] + verts[b])])
        added = []
        for fi in range(len(faces)):
            f = faces[fi]
            for k in range(3):
                u, w, c = f[k], f[(k + 1) % 3], f[(k + 2) % 3]
                if (u == a and w == b) or (u == b and w == a):
                    faces[fi] = [u, new, c]
                    added.append([new, w, c])
                    break
        faces = np.vstack([faces, np.array(added, dtype=faces.dtype)])
    return verts, faces


def decimate_to(verts: np.ndarray, faces: np.ndarray, num_verts: int, closed: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to exactly ``num_verts`` vertices.

    With ``closed`` the result must stay a closed genus-0 surface (then it has 2*num_verts-4 faces);
    without, very coarse levels (where thin fingers collapse into non-manifold spikes) are accepted too.
    """
    import fast_simplification
    margin = max(8, num_verts // 200)
    for attempt in range(24):
        target_faces = 2 * (num_verts - margin) - 4
        agg = (5.0, 3.0, 7.0, 4.0, 6.0, 2.0)[attempt % 6]
        out_v, out_f = fast_simplification.simplify(verts, faces.astype(np.int32), target_count=target_faces, agg=agg)
        used = np.unique(out_f)
        remap = -np.ones(len(out_v), dtype=np.int64)
        remap[used] = np.arange(len(used))
        out_v, out_f = out_v[used], remap[out_f]
        if len(out_v) > num_verts:
            margin *= 2
            continue
        if closed:
            try:
                check_closed_genus0(out_v, out_f)
            except RuntimeError as err:
                logger.info('decimation to %d (agg %.0f) gave a bad mesh (%s), retrying', num_verts, agg, err)
                margin += 3
                continue
        out_v, out_f = split_longest_edges(out_v, out_f, num_verts)
        if closed:
            check_closed_genus0(out_v, out_f)
        return out_v, out_f.astype(np.int64)
    raise RuntimeError(f'could not decimate to {num_verts} vertices')


def delaunay_flips(verts: np.ndarray, faces: np.ndarray, min_normal_dot: float = 0.95) -> tuple[np.ndarray, int]:
    """One pass of edge flips towards a Delaunay triangulation, keeping vertex and face counts.

    An edge shared by two nearly coplanar triangles is flipped when the two angles opposite it sum to
    more than pi and the flipped edge does not exist yet. Orientation is preserved.
    """
    faces = faces.copy()
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, f in enumerate(faces):
        for k in range(3):
            a, b = int(f[k]), int(f[(k + 1) % 3])
            edge_faces.setdefault((min(a, b), max(a, b)), []).append(fi)

    def angle(p, q, r):  # angle at p
        u, w = q - p, r - p
        return math.atan2(np.linalg.norm(np.cross(u, w)), float(u @ w))

    def normal(f):
        t = verts[f]
        n = np.cross(t[1] - t[0], t[2] - t[0])
        return n / max(np.linalg.norm(n), 1e-15)

    flips = 0
    for key in list(edge_faces):
        fl = edge_faces.get(key)
        if fl is None or len(fl) != 2:
            continue
        f1, f2 = fl
        a, b = key
        # orient: f1 contains a->b
        r1 = list(faces[f1])
        k1 = r1.index(a)
        if r1[(k1 + 1) % 3] != b:
            f1, f2 = f2, f1
            r1 = list(faces[f1])
            k1 = r1.index(a)
        c = r1[(k1 + 2) % 3]
        r2 = list(faces[f2])
        d = r2[(r2.index(b) + 2) % 3]
        if c == d or (min(c, d), max(c, d)) in edge_faces:
            continue
        if normal(faces[f1]) @ normal(faces[f2]) < min_normal_dot:
            continue
        if angle(verts[c], verts[a], verts[b]) + angle(verts[d], verts[a], verts[b]) <= math.pi + 1e-9:
            continue
        new1, new2 = np.array([a, d, c]), np.array([d, b, c])
        if normal(new1) @ normal(new2) < min_normal_dot:
            continue
        faces[f1], faces[f2] = new1, new2
        del edge_faces[key]
        edge_faces[(min(c, d), max(c, d))] = [f1, f2]
        for e, old, new in (((a, d), f2, f1), ((b, c), f1, f2)):
            lst = edge_faces[(min(e), max(e))]
            lst[lst.index(old)] = new
        flips += 1
    return faces, flips


def relax_on_surface(verts: np.ndarray, faces: np.ndarray, surf_verts: np.ndarray, surf_faces: np.ndarray,
                     iterations: int = 8, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Make the triangles more even without changing the vertex count or the topology.

    Each iteration flips edges towards Delaunay, moves every vertex part of the way towards the centroid
    of its neighbours along the surface (tangentially, so thin tips keep their length) and puts it back
    onto the original surface.
    """
    import trimesh
    surface = trimesh.Trimesh(surf_verts, surf_faces, process=False)
    for _ in range(iterations):
        faces, _ = delaunay_flips(verts, faces)
        adj = adjacency(faces, len(verts))
        degree = np.asarray(adj.sum(1)).ravel()
        delta = (adj @ verts) / degree[:, None] - verts
        normals = vertex_normals(torch.from_numpy(verts)[None], torch.from_numpy(faces))[0].numpy()
        delta -= (delta * normals).sum(1, keepdims=True) * normals
        verts, _, _ = trimesh.proximity.closest_point(surface, verts + step * delta)
    faces, _ = delaunay_flips(verts, faces)
    return verts, faces


def barycentric_map(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """(P, V) sparse map: each point -> barycentric weights of its closest point on the mesh surface."""
    import trimesh
    mesh = trimesh.Trimesh(verts, faces, process=False)
    closest, _, tri = trimesh.proximity.closest_point(mesh, points)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], closest)
    bary = np.clip(bary, 0.0, None)
    bary /= bary.sum(1, keepdims=True)
    rows = np.repeat(np.arange(len(points)), 3)
    return sp.csr_matrix((bary.reshape(-1), (rows, faces[tri].reshape(-1))), shape=(len(points), len(verts)))


def adjacency(faces: np.ndarray, num_verts: int) -> sp.csc_matrix:
    """Binary symmetric vertex adjacency (num_verts, num_verts)."""
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    a = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_verts, num_verts)).tocsc()
    a.data[:] = 1.0
    return a
