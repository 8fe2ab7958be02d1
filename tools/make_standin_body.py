"""Generate the project's stand-in body model (SMPL's file format) from the free `anny` body model.

SMPL cannot be shipped, so the project carries its own body model with SMPL's exact sizes (6890 vertices,
13776 faces, SMPL's 24-joint tree) converted from anny (NAVER, code Apache-2.0, MakeHuman assets CC0).
This script is the only part of the project that needs anny; its output under ``assets/standin/`` is
committed, and `utils.standin.ensure_standin` expands it into the official file formats.

Steps (all deterministic for a given ``--seed``):

1. Anny's rest body (A-pose, z up, facing -y) is re-posed into SMPL's T-pose (arms rotated to horizontal
   with anny's own skinning weights) and turned into SMPL's frame (y up, facing +z, metres). The eyeballs
   (separate closed shells) are dropped; the body shell is closed and genus 0.
2. The mean body is decimated with quadric edge collapse and brought to exactly 6890 vertices by splitting
   its longest edges; a closed genus-0 mesh with 6890 vertices has 2*6890-4 = 13776 faces.
3. Every new vertex is the barycentric projection of itself onto anny's surface, so any anny body maps
   linearly onto the new mesh; skinning weights and shapes are transferred through that map.
4. Vertices are permuted so that the indices SMPL's tables use as landmarks (nose 332, eyes, ears, toes,
   heels, finger tips) sit on those landmarks.
5. Shape: 10 principal directions (scaled to unit-variance betas) over random adult anny phenotypes,
   for a neutral (all genders), a male and a female model. Joints: anny bone heads mapped onto SMPL's 24
   joints; a sparse non-negative joint regressor over vertices is fitted across all the shapes.
6. Extra (9) and Human3.6M (17) joint regressors, the mean parameters, GraphCMR-style mesh downsampling
   (6890 -> 1723 -> 431 by real decimation) and DensePose-style UV data (24 parts) are derived.

Usage::

    ANNY_CACHE_DIR=/tmp/anny_cache python -m tools.make_standin_body --out assets/standin \
        [--samples 300] [--seed 0] [--preview output/standin_preview]

Needs ``pip install anny fast-simplification rtree`` (generator only). The first anny build takes about
half a minute and writes a large cache; point ANNY_CACHE_DIR outside the repository.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import sys
import time

import numpy as np
import scipy.io
import scipy.optimize
import scipy.sparse as sp
import torch
from scipy.spatial import cKDTree

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from utils.geometry import vertex_normals  # noqa: E402

logger = logging.getLogger('make_standin_body')

NUM_VERTS = 6890
NUM_FACES = 13776
NUM_DP_FACES = 13774
NUM_DP_VERTS = 7829
DOWNSAMPLED_SIZES = (1723, 431)
NUM_BETAS = 10
PELVIS_REST = np.array([0.0, -0.23, 0.0])  # SMPL's rest pelvis sits about 0.23 m below the origin

SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])

# SMPL joint <- anny bone head.
JOINT_FROM_BONE = [
    'root', 'upperleg01.L', 'upperleg01.R', 'spine03', 'lowerleg01.L', 'lowerleg01.R', 'spine02',
    'foot.L', 'foot.R', 'spine01', 'toe3-1.L', 'toe3-1.R', 'neck01', 'clavicle.L', 'clavicle.R', 'head',
    'upperarm01.L', 'upperarm01.R', 'lowerarm01.L', 'lowerarm01.R', 'wrist.L', 'wrist.R',
    'finger3-1.L', 'finger3-1.R',
]

# SMPL vertex indices used as landmarks by the 49-joint set (smplx's 'smplh' vertex ids).
LANDMARK_VERTS = {
    'nose': 332, 'right_eye': 6260, 'left_eye': 2800, 'right_ear': 4071, 'left_ear': 583,
    'left_big_toe': 3216, 'left_small_toe': 3226, 'left_heel': 3387,
    'right_big_toe': 6617, 'right_small_toe': 6624, 'right_heel': 6787,
    'left_thumb': 2746, 'left_index': 2319, 'left_middle': 2445, 'left_ring': 2556, 'left_pinky': 2673,
    'right_thumb': 6191, 'right_index': 5782, 'right_middle': 5905, 'right_ring': 6016, 'right_pinky': 6133,
}
FINGER_OF = {'thumb': 1, 'index': 2, 'middle': 3, 'ring': 4, 'pinky': 5}

# Adult phenotype ranges sampled for the shape space (anny's parameters live in [0, 1]; age 0.5 is a
# teenager and ages above about 0.62 are adults; these height values give about 1.58-1.97 m for men and
# 1.44-1.84 m for women).
PHENOTYPE_RANGES = {
    'age': (0.62, 0.95), 'muscle': (0.0, 1.0), 'weight': (0.0, 1.0),
    'height': (0.2, 0.55), 'proportions': (0.25, 0.75),
}
GENDER_VALUE = {'neutral': None, 'male': 0.0, 'female': 1.0}  # anny: 0 is the male anchor, 1 the female one

# DensePose's 24 surface parts (1-based): 1/2 torso back/front, 3 right hand, 4 left hand, 5 left foot,
# 6 right foot, 7/9 right upper leg back/front, 8/10 left upper leg back/front, 11/13 right lower leg
# back/front, 12/14 left lower leg back/front, 15/17 left upper arm back/front, 16/18 right upper arm
# back/front, 19/21 left lower arm back/front, 20/22 right lower arm back/front, 23/24 head right/left.
SEGMENT_GROUP = {0: 'torso', 3: 'torso', 6: 'torso', 9: 'torso', 13: 'torso', 14: 'torso',
                 12: 'head', 15: 'head',
                 1: 'upper_leg_l', 2: 'upper_leg_r', 4: 'lower_leg_l', 5: 'lower_leg_r',
                 7: 'foot_l', 8: 'foot_r', 10: 'foot_l', 11: 'foot_r',
                 16: 'upper_arm_l', 17: 'upper_arm_r', 18: 'lower_arm_l', 19: 'lower_arm_r',
                 20: 'hand_l', 21: 'hand_r', 22: 'hand_l', 23: 'hand_r'}
LIMB_PARTS = {  # group: (back part, front part, axis start joint, axis end joint, left side)
    'upper_leg_r': (7, 9, 2, 5, False), 'upper_leg_l': (8, 10, 1, 4, True),
    'lower_leg_r': (11, 13, 5, 8, False), 'lower_leg_l': (12, 14, 4, 7, True),
    'upper_arm_l': (15, 17, 16, 18, True), 'upper_arm_r': (16, 18, 17, 19, False),
    'lower_arm_l': (19, 21, 18, 20, True), 'lower_arm_r': (20, 22, 19, 21, False),
}


def segment_of_bone(label: str) -> int:
    """SMPL segment (0..23) whose skinning weight collects anny bone ``label``'s weight."""
    side_l = label.endswith('.L')
    name = label.split('.')[0]

    def pick(left: int, right: int) -> int:
        return left if side_l else right
    if name in ('root', 'pelvis', 'spine05', 'spine04'):
        return 0
    if name == 'spine03':
        return 3
    if name == 'spine02':
        return 6
    if name == 'spine01':
        return 9
    if name.startswith('neck'):
        return 12
    if name in ('head', 'eye') or name.startswith('eye'):
        return 15
    if name.startswith('upperleg'):
        return pick(1, 2)
    if name.startswith('lowerleg'):
        return pick(4, 5)
    if name == 'foot':
        return pick(7, 8)
    if name.startswith('toe'):
        return pick(10, 11)
    if name in ('clavicle', 'shoulder01'):
        return pick(13, 14)
    if name.startswith('upperarm'):
        return pick(16, 17)
    if name.startswith('lowerarm'):
        return pick(18, 19)
    if name == 'wrist' or name.startswith('metacarpal'):
        return pick(20, 21)
    if name.startswith('finger'):
        return pick(22, 23)
    raise ValueError(f'no SMPL segment for anny bone {label!r}')


# ----------------------------------------------------------------------------------------------------
# anny side
# ----------------------------------------------------------------------------------------------------
class AnnySource:
    """Anny's body, T-posed and expressed in SMPL's frame."""

    # anny (x left, y back, z up) -> SMPL (x left, y up, z forward)
    FRAME = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

    def __init__(self) -> None:
        import anny
        self.torch = torch
        self.model = anny.Anny()
        self.keypoints = anny.KeypointsRegressor.coco(self.model)
        self.bone_labels = list(self.model.bone_labels)
        faces = self.model.get_triangular_faces().cpu().numpy().astype(np.int64)
        num_all = self.model.template_vertices.shape[0]
        body = _largest_component(faces, num_all)
        self.body_idx = np.flatnonzero(body)
        remap = -np.ones(num_all, dtype=np.int64)
        remap[self.body_idx] = np.arange(len(self.body_idx))
        keep = body[faces].all(1)
        self.faces = remap[faces[keep]]
        w = self.model.vertex_bone_weights.cpu().numpy()
        idx = self.model.vertex_bone_indices.cpu().numpy()
        dense = np.zeros((num_all, len(self.bone_labels)))
        np.add.at(dense, (np.repeat(np.arange(num_all), w.shape[1]), idx.reshape(-1)), w.reshape(-1))
        self.bone_weights = dense[self.body_idx]
        self.bone_weights /= self.bone_weights.sum(1, keepdims=True)
        seg = np.array([segment_of_bone(b) for b in self.bone_labels])
        self.bone_to_segment = np.zeros((len(self.bone_labels), 24))
        self.bone_to_segment[np.arange(len(seg)), seg] = 1.0

    def bone(self, label: str) -> int:
        return self.bone_labels.index(label)

    ARM_CHAIN = (  # (bones that follow this link, link start bone, link end bone)
        (('upperarm01', 'upperarm02'), 'upperarm01', 'lowerarm01'),
        (('lowerarm01', 'lowerarm02'), 'lowerarm01', 'wrist'),
        (('wrist', 'metacarpal', 'finger'), 'wrist', 'finger3-1'),
    )

    def _bones_named(self, side: str, prefixes: tuple[str, ...]) -> list[int]:
        return [i for i, b in enumerate(self.bone_labels)
                if b.endswith('.' + side) and b.split('.')[0].startswith(prefixes)]

    def tposed(self, phenotypes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """T-posed bodies in SMPL's frame.

        Args:
            phenotypes: anny phenotype name -> (B,) values in [0, 1].

        Returns:
            dict with ``verts`` (B, V_body, 3), ``heads`` (B, 104, 3) bone heads and ``keypoints``
            (B, 23, 3) anny's COCO-wholebody keypoints, metres, SMPL frame, T-pose.
        """
        torch = self.torch
        kw = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in phenotypes.items()}
        with torch.no_grad():
            out = self.model(phenotype_kwargs=kw)
            rest = out['rest_vertices']
            kps = self.keypoints({'vertices': rest}).cpu().numpy()
        verts = rest.cpu().numpy()[:, self.body_idx] @ self.FRAME.T
        heads = out['rest_bone_heads'].cpu().numpy() @ self.FRAME.T
        kps = kps @ self.FRAME.T
        num = verts.shape[0]
        blend = np.zeros((num, verts.shape[1], 3, 4))
        blend[:, :, :, :3] = np.eye(3)
        free = np.ones(verts.shape[1])
        for side, target in (('L', np.array([1.0, 0.0, 0.0])), ('R', np.array([-1.0, 0.0, 0.0]))):
            # Straighten the arm link by link (upper arm, forearm, hand) onto the horizontal.
            transform = np.tile(np.eye(4), (num, 1, 1))
            posed_heads = heads.copy()
            for link, (prefixes, start, end) in enumerate(self.ARM_CHAIN):
                pivot = posed_heads[:, self.bone(f'{start}.{side}')]
                rot = _rotation_between(posed_heads[:, self.bone(f'{end}.{side}')] - pivot,
                                        np.broadcast_to(target, pivot.shape))
                step = _rigid(rot, pivot)
                if link == 0:
                    shoulder = self.bone('shoulder01.' + side)
                    w = self.bone_weights[:, shoulder]
                    blend += w[None, :, None, None] * _rigid(_scale_rotation(rot, 0.5), pivot)[:, None, :3]
                    free -= w
                transform = step @ transform
                bones = self._bones_named(side, prefixes)
                w = self.bone_weights[:, bones].sum(1)
                blend += w[None, :, None, None] * transform[:, None, :3]
                free -= w
                later = self._bones_named(side, sum((c[0] for c in self.ARM_CHAIN[link:]), ()))
                posed_heads[:, later] = (np.einsum('bij,bkj->bki', step[:, :3, :3], posed_heads[:, later])
                                         + step[:, None, :3, 3])
            heads = posed_heads
        blend[:, :, :, :3] -= (1.0 - free)[None, :, None, None] * np.eye(3)
        verts = np.einsum('bvij,bvj->bvi', blend[..., :3], verts) + blend[..., 3]
        return {'verts': verts, 'heads': heads, 'keypoints': kps}


def _rigid(rot: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """(B, 4, 4) rotations ``rot`` (B, 3, 3) about the points ``pivot`` (B, 3)."""
    out = np.tile(np.eye(4), (rot.shape[0], 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = pivot - np.einsum('bij,bj->bi', rot, pivot)
    return out


def _largest_component(faces: np.ndarray, num_verts: int) -> np.ndarray:
    """Boolean mask of the vertices of the largest edge-connected component."""
    from scipy.sparse.csgraph import connected_components
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_verts, num_verts))
    _, labels = connected_components(graph, directed=False)
    return labels == np.bincount(labels).argmax()


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B, 3, 3) smallest rotations taking directions a (B, 3) onto b (B, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = (a * b).sum(-1)
    angle = np.arctan2(sin, cos)
    axis = axis / np.maximum(sin, 1e-12)[:, None]
    return _axis_angle_to_matrix(axis * angle[:, None])


def _axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, (N, 3) axis-angle in radians -> (N, 3, 3)."""
    aa = np.asarray(aa, dtype=np.float64).reshape(-1, 3)
    angle = np.linalg.norm(aa, axis=-1)
    axis = aa / np.maximum(angle, 1e-12)[:, None]
    x, y, z = axis.T
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + s * k + (1 - c) * (k @ k)


def _scale_rotation(rot: np.ndarray, factor: float) -> np.ndarray:
    """Rotations with the same axis and ``factor`` times the angle."""
    from scipy.spatial.transform import Rotation
    return Rotation.from_rotvec(Rotation.from_matrix(rot).as_rotvec() * factor).as_matrix()


# ----------------------------------------------------------------------------------------------------
# mesh surgery
# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
# model pieces
# ----------------------------------------------------------------------------------------------------
def sample_phenotypes(rng: np.random.Generator, num: int, gender: float | None) -> dict[str, np.ndarray]:
    """Random adult anny phenotypes; gender fixed, or uniform in [0, 1] when None."""
    out = {k: rng.uniform(lo, hi, num) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
    out['gender'] = rng.uniform(0.0, 1.0, num) if gender is None else np.full(num, gender)
    return out


def pick_landmarks(verts: np.ndarray, bone_w: np.ndarray, src: AnnySource, heads: np.ndarray,
                   keypoints: np.ndarray) -> dict[str, int]:
    """Vertex (of the decimated mean body) at each SMPL landmark.

    Face and foot landmarks are the vertices nearest to anny's keypoints; a finger tip is the vertex of
    the finger's last phalanx that lies farthest along the finger.
    """
    kp_labels = list(src.keypoints.labels)
    tree = cKDTree(verts)
    chosen: dict[str, int] = {}
    for name in LANDMARK_VERTS:
        if name.split('_')[-1] in FINGER_OF:
            side = 'L' if name.startswith('left') else 'R'
            k = FINGER_OF[name.split('_')[-1]]
            tip_bone = src.bone(f'finger{k}-3.{side}')
            mid_bone = src.bone(f'finger{k}-2.{side}')
            direction = heads[tip_bone] - heads[mid_bone]
            direction /= np.linalg.norm(direction)
            cand = np.flatnonzero(bone_w.argmax(1) == tip_bone)
            if len(cand) == 0:
                cand = np.flatnonzero(bone_w[:, tip_bone] > 0.2)
            along = (verts[cand] - heads[tip_bone]) @ direction
            chosen[name] = int(cand[np.argmax(along)])
        else:
            chosen[name] = int(tree.query(keypoints[kp_labels.index(name)])[1])
    if len(set(chosen.values())) != len(chosen):
        raise RuntimeError(f'two landmarks fell on one vertex: {chosen}')
    return chosen


def landmark_permutation(num_verts: int, chosen: dict[str, int], verts: np.ndarray) -> np.ndarray:
    """order (num_verts,): new vertex i is old vertex order[i]; landmarks land on SMPL's indices."""
    order = -np.ones(num_verts, dtype=np.int64)
    for name, old in chosen.items():
        order[LANDMARK_VERTS[name]] = old
    rest = np.setdiff1d(np.arange(num_verts), list(chosen.values()))
    rest = rest[np.lexsort((verts[rest, 0], -verts[rest, 1]))]  # head to feet, for locality
    order[order < 0] = rest
    return order


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, mean_verts: np.ndarray, segment: np.ndarray,
                        max_candidates: int = 400) -> tuple[sp.csc_matrix, np.ndarray]:
    """Sparse non-negative regressor (J, V), rows summing to 1, fitted across shapes.

    The candidates for a joint are the vertices driven mostly by that joint, its parent or its children
    (the rings of skin around it), at most ``max_candidates`` of them, nearest first.

    Args:
        verts: (N, V, 3) rest vertices of N bodies; joints: (N, J, 3) their rest joints.
        mean_verts: (V, 3) the mean body; segment: (V,) dominant skinning joint of each vertex.
    Returns:
        (regressor, per-joint RMS error in metres over the N bodies).
    """
    rows, cols, vals, errs = [], [], [], []
    lam = 10.0
    mean_joints = joints.mean(0)
    for j in range(joints.shape[1]):
        family = {j, int(SMPL_PARENTS[j])} | {int(c) for c in np.flatnonzero(SMPL_PARENTS == j)}
        cand = np.flatnonzero(np.isin(segment, list(family - {-1})))
        dist = np.linalg.norm(mean_verts[cand] - mean_joints[j], axis=1)
        cand = cand[np.argsort(dist)[:max_candidates]]
        a = verts[:, cand, :].transpose(0, 2, 1).reshape(-1, len(cand))
        b = joints[:, j, :].reshape(-1)
        a_aug = np.vstack([a, lam * np.ones((1, len(cand)))])
        b_aug = np.concatenate([b, [lam]])
        w, _ = scipy.optimize.nnls(a_aug, b_aug, maxiter=50 * len(cand))
        w = np.where(w > 1e-4, w, 0.0)
        w /= w.sum()
        errs.append(np.sqrt(np.mean(((a @ w) - b) ** 2)))
        nz = np.flatnonzero(w)
        rows += [j] * len(nz)
        cols += list(cand[nz])
        vals += list(w[nz])
    reg = sp.csc_matrix((vals, (rows, cols)), shape=(joints.shape[1], verts.shape[1]))
    return reg, np.array(errs)


def onehot_row(index: int, num_verts: int) -> np.ndarray:
    row = np.zeros(num_verts)
    row[index] = 1.0
    return row


def extra_and_h36m_regressors(jreg: np.ndarray, mean_verts: np.ndarray, segment: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray]:
    """J_regressor_extra (9, V) and J_regressor_h36m (17, V) as combinations of joint rows and vertices.

    Extra rows: [R hip, L hip, Neck (LSP), Head top (LSP), Pelvis (MPII), Thorax (MPII), Spine (H36M),
    Jaw (H36M), Head (H36M)]. H36M rows follow the order the project's H36M_TO_J17 table assumes:
    0 pelvis, 1-3 left hip/knee/ankle, 4-6 right hip/knee/ankle, 7 spine, 8 thorax, 9 jaw, 10 head,
    11-13 left shoulder/elbow/wrist, 14-16 right shoulder/elbow/wrist.
    """
    nv = mean_verts.shape[0]
    head_verts = np.flatnonzero(segment == 15)
    top = head_verts[np.argsort(-mean_verts[head_verts, 1])[:8]]
    head_top = np.zeros(nv)
    head_top[top] = 1.0 / len(top)
    pelvis_mpii = 0.5 * (jreg[1] + jreg[2])
    thorax = 0.5 * (jreg[13] + jreg[14])
    spine = 0.5 * (jreg[0] + thorax)
    jaw = 0.4 * jreg[15] + 0.6 * onehot_row(LANDMARK_VERTS['nose'], nv)
    jaw = 0.5 * jaw + 0.5 * (0.5 * jreg[12] + 0.5 * jreg[15])
    head_h36m = 0.5 * (jreg[15] + head_top)
    neck_lsp = 0.5 * (jreg[12] + jreg[15])
    extra = np.stack([jreg[2], jreg[1], neck_lsp, head_top, pelvis_mpii, thorax, spine, jaw, head_h36m])
    h36m = np.stack([jreg[0], jreg[1], jreg[4], jreg[7], jreg[2], jreg[5], jreg[8], spine, thorax, jaw,
                     head_h36m, jreg[16], jreg[18], jreg[20], jreg[17], jreg[19], jreg[21]])
    return extra, h36m


def mean_params() -> dict[str, np.ndarray]:
    """SPIN-style mean parameters: relaxed standing pose, global orientation 180 degrees about x."""
    pose_aa = np.zeros((24, 3))
    pose_aa[0] = [math.pi, 0.0, 0.0]
    pose_aa[16] = [0.0, 0.0, -1.15]  # left shoulder: arm down by the side
    pose_aa[17] = [0.0, 0.0, 1.15]
    pose_aa[18] = [0.0, -0.25, 0.0]  # elbows slightly bent
    pose_aa[19] = [0.0, 0.25, 0.0]
    pose_aa[1] = [-0.1, 0.0, 0.05]
    pose_aa[2] = [-0.1, 0.0, -0.05]
    pose_aa[4] = [0.15, 0.0, 0.0]
    pose_aa[5] = [0.15, 0.0, 0.0]
    rot = _axis_angle_to_matrix(pose_aa)
    rot6d = rot[:, :, :2].reshape(-1)  # original layout: per joint [R00, R01, R10, R11, R20, R21]
    return {'pose': rot6d.astype(np.float64), 'shape': np.zeros(NUM_BETAS), 'cam': np.array([0.9, 0.0, 0.0])}


# ----------------------------------------------------------------------------------------------------
# DensePose-style UV data
# ----------------------------------------------------------------------------------------------------
def face_parts(verts: np.ndarray, faces: np.ndarray, weights: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """DensePose part id (1..24) of every face from its dominant skinning segment and its side."""
    seg = (weights[faces[:, 0]] + weights[faces[:, 1]] + weights[faces[:, 2]]).argmax(1)
    centre = verts[faces].mean(1)
    parts = np.zeros(len(faces), dtype=np.int64)
    for fi, (s, c) in enumerate(zip(seg, centre)):
        group = SEGMENT_GROUP[int(s)]
        if group == 'torso':
            parts[fi] = 2 if c[2] > _torso_axis_z(c[1], joints) else 1
        elif group == 'head':
            parts[fi] = 24 if c[0] > 0 else 23
        elif group.startswith('hand'):
            parts[fi] = 4 if group.endswith('l') else 3
        elif group.startswith('foot'):
            parts[fi] = 5 if group.endswith('l') else 6
        else:
            back, front, j0, j1, _ = LIMB_PARTS[group]
            axis = joints[j1] - joints[j0]
            off = c - joints[j0]
            off = off - axis * (off @ axis) / (axis @ axis)
            parts[fi] = front if off[2] > 0 else back
    return parts


def _torso_axis_z(y: float, joints: np.ndarray) -> float:
    """z of the spine line (pelvis, spine1..3, neck) at height y."""
    chain = joints[[0, 3, 6, 9, 12]]
    order = np.argsort(chain[:, 1])
    return float(np.interp(y, chain[order, 1], chain[order, 2]))


def face_neighbours(faces: np.ndarray) -> list[list[int]]:
    """Edge-adjacent faces of every face."""
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, f in enumerate(faces):
        for k in range(3):
            key = (min(int(f[k]), int(f[(k + 1) % 3])), max(int(f[k]), int(f[(k + 1) % 3])))
            edge_faces.setdefault(key, []).append(fi)
    neighbours: list[list[int]] = [[] for _ in range(len(faces))]
    for fl in edge_faces.values():
        for a in fl:
            neighbours[a] += [b for b in fl if b != a]
    return neighbours


def smooth_parts(parts: np.ndarray, neighbours: list[list[int]], passes: int = 4) -> np.ndarray:
    """Majority filter: a face whose neighbours mostly belong to one other part joins it (straight borders)."""
    parts = parts.copy()
    for _ in range(passes):
        changed = 0
        for fi, nb in enumerate(neighbours):
            labels = [parts[g] for g in nb]
            best = max(set(labels), key=labels.count)
            if best != parts[fi] and labels.count(best) >= 2:
                parts[fi] = best
                changed += 1
        if not changed:
            break
    return parts


def face_subcharts(verts: np.ndarray, faces: np.ndarray, parts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Sub-chart (0/1) of every face: feet split into top (0) and sole (1), head halves into back (0) and
    face (1); the other parts are one chart each.

    A DensePose vertex is one (SMPL vertex, part, sub-chart) triple, so these seams duplicate vertices as
    the chart cuts of the real UV data do.
    """
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    sub = np.zeros(len(faces), dtype=np.int64)
    feet = np.isin(parts, (5, 6))
    head = np.isin(parts, (23, 24))
    sub[feet & (normals[:, 1] < -0.5)] = 1
    sub[head & (tri.mean(1)[:, 2] > joints[15, 2])] = 1
    return sub


def dp_vertex_count(faces: np.ndarray, labels: np.ndarray) -> int:
    """Number of distinct (SMPL vertex, chart label) pairs, i.e. DensePose vertices."""
    return len(np.unique(np.stack([faces.reshape(-1), np.repeat(labels, 3)], 1), axis=0))


def adjust_dp_vertex_count(faces: np.ndarray, labels: np.ndarray, neighbours: list[list[int]], num_verts: int,
                           target: int, rng: np.random.Generator) -> np.ndarray:
    """Move border faces to a neighbouring chart until the DensePose vertex count is ``target``.

    ``labels`` are ``2 * part + subchart``. Faces move between the sub-charts of one part first (this
    changes only the UV seams); only if that cannot reach the target do faces move between parts.
    Straightening a border lowers the count, a notch raises it; faces are visited in a random order so
    the changes spread over all borders.
    """
    labels = labels.copy()
    vert_faces: list[list[int]] = [[] for _ in range(num_verts)]
    for fi, f in enumerate(faces):
        for v in f:
            vert_faces[v].append(fi)

    def local_count(fi: int) -> int:
        return sum(len({labels[g] for g in vert_faces[v]}) for v in faces[fi])

    count = dp_vertex_count(faces, labels)
    logger.info('DensePose vertices before adjusting the borders: %d (target %d)', count, target)
    sizes = np.bincount(labels, minlength=64)
    for same_part_only in (True, False):
        for _ in range(30):
            if count == target:
                break
            for fi in rng.permutation(len(faces)):
                if count == target:
                    break
                others = [labels[g] for g in neighbours[fi] if labels[g] != labels[fi]
                          and (not same_part_only or labels[g] // 2 == labels[fi] // 2)]
                if not others or sizes[labels[fi]] < 30:
                    continue
                new = max(set(others), key=others.count)
                need = target - count
                old = labels[fi]
                before = local_count(fi)
                labels[fi] = new
                delta = local_count(fi) - before
                if delta == 0 or np.sign(delta) != np.sign(need) or abs(delta) > abs(need):
                    labels[fi] = old
                    continue
                sizes[old] -= 1
                sizes[new] += 1
                count += delta
    if count != target:
        raise RuntimeError(f'could not reach {target} DensePose vertices (stuck at {count})')
    return labels


def uv_coordinates(verts: np.ndarray, faces: np.ndarray, labels: np.ndarray, joints: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DensePose vertices and per-vertex (U, V) charts.

    Args:
        verts: (V, 3) mean body; faces: (F, 3) SMPL faces kept for DensePose; labels: (F,) ``2 * part +
            subchart``; joints: (24, 3).

    Returns:
        dp_faces (F, 3) 0-based into the DensePose vertices, dp_to_smpl (Vd,) SMPL vertex of each
        DensePose vertex, u (Vd,), v (Vd,) in [0, 1]. Limb halves are charted cylindrically around the
        bone, the torso halves over (x, y), the head halves over (z, y), hands and feet over their plane;
        the two sub-charts of a foot or a head half lie side by side in U. Left parts are charted in mirrored coordinates so
        that mirror-image parts share one chart (their symmetry transforms are the identity).
    """
    pairs, inverse = np.unique(np.stack([faces.reshape(-1), np.repeat(labels, 3)], 1), axis=0, return_inverse=True)
    dp_faces = inverse.reshape(-1, 3)
    dp_to_smpl, dp_label = pairs[:, 0], pairs[:, 1]
    dp_part, dp_sub = dp_label // 2, dp_label % 2
    raw = np.zeros((len(pairs), 2))
    limb_of_part = {}
    for back, front, j0, j1, left in LIMB_PARTS.values():
        limb_of_part[back] = (j0, j1, left, False)
        limb_of_part[front] = (j0, j1, left, True)
    for p in range(1, 25):
        sel = dp_part == p
        pos = verts[dp_to_smpl[sel]].copy()
        if p in limb_of_part:
            j0, j1, left, is_front = limb_of_part[p]
            a, b = joints[j0].copy(), joints[j1].copy()
            if left:
                pos[:, 0] *= -1
                a[0] *= -1
                b[0] *= -1
            axis = (b - a) / np.linalg.norm(b - a)
            fwd = np.array([0.0, 0.0, 1.0]) - axis * axis[2]
            fwd /= np.linalg.norm(fwd)
            side = np.cross(axis, fwd)
            off = pos - a
            phi = np.arctan2(off @ side, off @ fwd)
            raw[sel, 0] = (phi + np.pi / 2) / np.pi if is_front else (np.mod(phi, 2 * np.pi) - np.pi / 2) / np.pi
            raw[sel, 1] = off @ axis
        elif p in (1, 2):
            raw[sel, 0] = 0.5 + 0.5 * pos[:, 0] / np.abs(pos[:, 0]).max()
            raw[sel, 1] = pos[:, 1]
        elif p in (23, 24):
            raw[sel, 0] = pos[:, 2]
            raw[sel, 1] = pos[:, 1]
        elif p in (3, 4):
            raw[sel, 0] = pos[:, 2]
            raw[sel, 1] = -pos[:, 0] if p == 4 else pos[:, 0]
        else:
            raw[sel, 0] = -pos[:, 0] if p == 5 else pos[:, 0]
            raw[sel, 1] = pos[:, 2]
    uv = np.zeros_like(raw)
    for p in range(1, 25):
        sel = dp_part == p
        lo, hi = raw[sel, 1].min(), raw[sel, 1].max()
        uv[sel, 1] = (raw[sel, 1] - lo) / max(hi - lo, 1e-9)
        if p in (1, 2):
            uv[sel, 0] = np.clip(raw[sel, 0], 0, 1)
            continue
        num_sub = 2 if p in (5, 6, 23, 24) else 1
        for s in range(num_sub):
            sub_sel = sel & (dp_sub == s)
            if not sub_sel.any():
                continue
            lo, hi = raw[sub_sel, 0].min(), raw[sub_sel, 0].max()
            uv[sub_sel, 0] = (s + (raw[sub_sel, 0] - lo) / max(hi - lo, 1e-9)) / num_sub
    return dp_faces, dp_to_smpl, uv[:, 0], uv[:, 1]


# ----------------------------------------------------------------------------------------------------
# downsampling (GraphCMR format)
# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
# preview
# ----------------------------------------------------------------------------------------------------
def numpy_lbs(v_template: np.ndarray, weights: np.ndarray, joints: np.ndarray, pose_aa: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Minimal linear blend skinning without pose correctives, in numpy.

    Args:
        v_template: (V, 3) rest vertices. weights: (V, 24) skinning weights. joints: (24, 3) rest joints.
        pose_aa: (24, 3) axis-angle, radians.

    Returns:
        (V, 3) posed vertices and (24, 3) posed joints.
    """
    rot = _axis_angle_to_matrix(pose_aa)
    world = np.zeros((24, 4, 4))
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rot[j]
        local[:3, 3] = joints[j] - (joints[SMPL_PARENTS[j]] if j else 0.0)
        world[j] = local if j == 0 else world[SMPL_PARENTS[j]] @ local
    rel = world.copy()
    rel[:, :3, 3] -= np.einsum('jab,jb->ja', world[:, :3, :3], joints)
    blend = np.einsum('vj,jab->vab', weights, rel)
    return np.einsum('vab,vb->va', blend[:, :3, :3], v_template) + blend[:, :3, 3], world[:, :3, 3]


def walking_pose() -> np.ndarray:
    """(24, 3) axis-angle of a mid-stride walking pose with arms down."""
    pose = np.zeros((24, 3))
    pose[1] = [-0.45, 0.0, 0.0]
    pose[2] = [0.35, 0.0, 0.0]
    pose[4] = [0.3, 0.0, 0.0]
    pose[5] = [0.6, 0.0, 0.0]
    pose[16] = [0.0, 0.25, -1.2]
    pose[17] = [0.0, 0.25, 1.2]
    pose[18] = [0.0, -0.5, 0.0]
    pose[19] = [0.0, 0.5, 0.0]
    return pose


def render_previews(out_dir: pathlib.Path, v_template: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                    joints: np.ndarray, parts_img: tuple | None = None) -> list[pathlib.Path]:
    """Front and side PNGs of the body in T-pose and in a walking pose."""
    from PIL import Image
    from utils.render.renderer import PyRenderer
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = PyRenderer(faces=faces, resolution=(512, 512), focal_length=700.0)
    written = []
    poses = {'tpose': np.zeros((24, 3)), 'walk': walking_pose()}
    for name, pose in poses.items():
        verts, _ = numpy_lbs(v_template, weights, joints, pose)
        verts = verts - verts.mean(0)
        for view, deg in (('front', 0.0), ('side', 90.0)):
            ang = math.radians(deg)
            rot_y = np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
            cam = (verts @ rot_y.T) * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 0.0, 3.2])
            rgb, alpha = renderer.render_rgba(cam.astype(np.float32), colors='neutral')
            img = rgb.numpy() + (1.0 - alpha.numpy()[..., None]) * 1.0
            path = out_dir / f'standin_{name}_{view}.png'
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------
STANDIN_MD = '''# Stand-in body model (NOT SMPL)

These files have the names, sizes and formats of the SMPL body model files that PyMAF uses (6890
vertices, 13776 faces, SMPL's 24-joint tree, 10 shape parameters), but they are a **stand-in**: a body
model converted from [anny](https://github.com/naver/anny) (NAVER; code Apache-2.0, MakeHuman-derived
assets CC0) by `tools/make_standin_body.py`. They contain no SMPL data. Results obtained with them are
not comparable with published SMPL numbers, and checkpoints trained on real SMPL (such as PyMAF's
released one) expect SMPL's vertex layout, so meshes they predict through this model look wrong except
at the landmark vertices and joints.

- `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl`: plain-numpy SMPL pickles (`v_template`, `shapedirs` (10 PCA
  directions over adult anny bodies, unit-variance betas), `posedirs` (zeros: no pose correctives),
  `J_regressor` (sparse, fitted across shapes), `weights`, `kintree_table`, `f`, `J`, `standin: True`).
- `J_regressor_extra.npy`, `J_regressor_h36m.npy`: built from the joint regressor and landmark vertices.
- `smpl_mean_params.npz`: a relaxed standing pose (6D, global orientation 180 degrees about x), zero
  shape, camera [0.9, 0, 0].
- `mesh_downsampling.npz`: GraphCMR format, 6890 -> 1723 -> 431 by quadric decimation of this mesh.
- `UV_data/`: DensePose format, 24 parts, charts by simple cylindrical/planar projections; symmetry
  tables map each part's (U, V) onto its mirror part (identity, or U -> 1-U on the torso halves).

Credit: anny by NAVER Corp., Apache License 2.0 (code) and CC0 (assets, from MakeHuman).
'''

STANDIN_NOTE = ('STAND-IN body model generated by tools/make_standin_body.py from anny (NAVER, code '
                'Apache-2.0, MakeHuman assets CC0). It is NOT SMPL and carries none of SMPL\'s data.')


def save_mat_deterministic(path: pathlib.Path, arrays: dict) -> None:
    """scipy.io.savemat (compressed) with a fixed header text instead of the creation date."""
    import io
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, do_compression=True)
    data = bytearray(buf.getvalue())
    header = b'MATLAB 5.0 MAT-file, stand-in body model UV data (not SMPL / DensePose)'
    data[:116] = header.ljust(116)
    path.write_bytes(bytes(data))


def build(out_dir: pathlib.Path, num_samples: int, seed: int, preview: pathlib.Path | None) -> dict:
    t0 = time.time()
    rng = np.random.default_rng(seed)
    src = AnnySource()
    logger.info('anny loaded in %.1f s, body shell %d vertices / %d faces', time.time() - t0,
                len(src.body_idx), len(src.faces))

    middle = {k: np.array([0.5 * (lo + hi)]) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
    middle['gender'] = np.array([0.5])
    base = src.tposed(middle)
    base_verts = base['verts'][0]
    check_closed_genus0(base_verts, src.faces)

    dec_v, dec_f = decimate_to(base_verts, src.faces, NUM_VERTS)
    dec_v, dec_f = relax_on_surface(dec_v, dec_f, base_verts, src.faces)
    check_closed_genus0(dec_v, dec_f)
    bmap = barycentric_map(dec_v, base_verts, src.faces)
    dec_v = bmap @ base_verts
    bone_w = np.asarray(bmap @ src.bone_weights)
    chosen = pick_landmarks(dec_v, bone_w, src, base['heads'][0], base['keypoints'][0])
    order = landmark_permutation(NUM_VERTS, chosen, dec_v)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(NUM_VERTS)
    faces = inverse[dec_f]
    bmap = bmap[order]
    bone_w = bone_w[order]
    check_closed_genus0(dec_v[order], faces)
    if len(faces) != NUM_FACES:
        raise RuntimeError(f'expected {NUM_FACES} faces, got {len(faces)}')
    logger.info('mesh: %d vertices, %d faces (%.1f s)', NUM_VERTS, len(faces), time.time() - t0)

    weights = bone_w @ src.bone_to_segment
    weights = np.where(weights > 1e-3, weights, 0.0)
    weights /= weights.sum(1, keepdims=True)
    segment = weights.argmax(1)
    joint_bones = [src.bone(b) for b in JOINT_FROM_BONE]

    bodies, all_verts, all_joints = {}, [], []
    for gender, value in GENDER_VALUE.items():
        phen = sample_phenotypes(rng, num_samples, value)
        out = src.tposed(phen)
        verts = np.stack([bmap @ v for v in out['verts']])
        joints = out['heads'][:, joint_bones]
        shift = PELVIS_REST - joints[:, 0]
        verts += shift[:, None]
        joints += shift[:, None]
        mean = verts.mean(0)
        centred = (verts - mean).reshape(num_samples, -1)
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        std = sing[:NUM_BETAS] / math.sqrt(num_samples - 1)
        dirs = vt[:NUM_BETAS] * std[:, None]
        signs = np.sign(dirs[np.arange(NUM_BETAS), np.abs(dirs).argmax(1)])
        dirs *= signs[:, None]
        grown = (mean + dirs[0].reshape(NUM_VERTS, 3))[:, 1]
        if np.ptp(grown) < np.ptp(mean[:, 1]):
            dirs[0] *= -1  # a positive first beta makes the body taller
        explained = float((sing[:NUM_BETAS] ** 2).sum() / (sing ** 2).sum())
        shapedirs = dirs.reshape(NUM_BETAS, NUM_VERTS, 3).transpose(1, 2, 0)
        heights = verts[..., 1].max(1) - verts[..., 1].min(1)
        logger.info('%s: 10 PCs explain %.5f of shape variance; heights %.2f-%.2f m', gender, explained,
                    heights.min(), heights.max())
        bodies[gender] = {'v_template': mean, 'shapedirs': shapedirs, 'explained': explained,
                          'height_range': [float(heights.min()), float(heights.max())]}
        all_verts.append(verts)
        all_joints.append(joints)
    all_verts = np.concatenate(all_verts)
    all_joints = np.concatenate(all_joints)

    jreg, jerr = fit_joint_regressor(all_verts, all_joints, bodies['neutral']['v_template'], segment)
    logger.info('joint regressor RMS error per joint (mm): %s', np.round(1000 * jerr, 1).tolist())
    logger.info('joint regressor: %d non-zeros, RMS error max %.2f mm, mean %.2f mm', jreg.nnz,
                1000 * jerr.max(), 1000 * jerr.mean())
    jreg_dense = jreg.toarray()
    extra, h36m = extra_and_h36m_regressors(jreg_dense, bodies['neutral']['v_template'], segment)

    neutral_v = bodies['neutral']['v_template']
    neutral_j = jreg_dense @ neutral_v
    neighbours = face_neighbours(faces)
    adj = adjacency(faces, NUM_VERTS)
    smooth_w = weights
    for _ in range(6):  # diffuse the skinning weights a little so that part borders follow smooth lines
        smooth_w = 0.5 * smooth_w + 0.5 * (adj @ smooth_w) / np.asarray(adj.sum(1))
    parts = smooth_parts(face_parts(neutral_v, faces, smooth_w, neutral_j), neighbours)
    torso_low = np.flatnonzero(np.isin(parts, (1, 2)))
    dropped = torso_low[np.argsort(neutral_v[faces[torso_low]].mean(1)[:, 1])[:2]]
    keep = np.setdiff1d(np.arange(len(faces)), dropped)
    remap = -np.ones(len(faces), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    kept_neighbours = [[int(remap[g]) for g in neighbours[fi] if remap[g] >= 0] for fi in keep]
    dp_faces_smpl = faces[keep]
    if len(dp_faces_smpl) != NUM_DP_FACES:
        raise RuntimeError(f'expected {NUM_DP_FACES} DensePose faces, got {len(dp_faces_smpl)}')
    labels = 2 * parts[keep] + face_subcharts(neutral_v, dp_faces_smpl, parts[keep], neutral_j)
    before = dp_vertex_count(dp_faces_smpl, labels)
    labels = adjust_dp_vertex_count(dp_faces_smpl, labels, kept_neighbours, NUM_VERTS, NUM_DP_VERTS, rng)
    dp_parts = labels // 2
    logger.info('DensePose vertices: %d from the part borders and chart seams, moved to %d', before, NUM_DP_VERTS)
    dp_faces, dp_to_smpl, u, v = uv_coordinates(neutral_v, dp_faces_smpl, labels, neutral_j)

    down = downsampling(neutral_v, faces)

    out_dir.mkdir(parents=True, exist_ok=True)
    for gender, body in bodies.items():
        np.savez_compressed(out_dir / f'body_{gender}.npz', v_template=body['v_template'].astype(np.float32),
                            shapedirs=body['shapedirs'].astype(np.float32), note=np.array(STANDIN_NOTE))
    np.savez_compressed(out_dir / 'body_common.npz', faces=faces.astype(np.uint32),
                        weights=weights.astype(np.float32), J_regressor=jreg_dense.astype(np.float32),
                        parents=SMPL_PARENTS, note=np.array(STANDIN_NOTE))
    np.save(out_dir / 'J_regressor_extra.npy', extra.astype(np.float32))
    np.save(out_dir / 'J_regressor_h36m.npy', h36m.astype(np.float32))
    note = np.array(STANDIN_NOTE)
    np.savez(out_dir / 'smpl_mean_params.npz', **mean_params(), standin_note=note)
    np.savez(out_dir / 'mesh_downsampling.npz', **down, standin_note=note)
    uv_dir = out_dir / 'UV_data'
    uv_dir.mkdir(exist_ok=True)
    save_mat_deterministic(uv_dir / 'UV_Processed.mat', {
        'All_FaceIndices': dp_parts.reshape(-1, 1).astype(np.float64),
        'All_Faces': (dp_faces + 1).astype(np.float64),
        'All_U_norm': u.reshape(-1, 1), 'All_V_norm': v.reshape(-1, 1),
        'All_vertices': (dp_to_smpl + 1).reshape(1, -1).astype(np.float64),
        'standin_note': STANDIN_NOTE,
    })
    report = {
        'seed': seed, 'samples_per_gender': num_samples,
        'anny_version': __import__('anny').__version__,
        'num_verts': NUM_VERTS, 'num_faces': int(len(faces)),
        'shape_variance_explained': {g: b['explained'] for g, b in bodies.items()},
        'height_range_m': {g: b['height_range'] for g, b in bodies.items()},
        'joint_regressor_rms_mm': {'max': float(1000 * jerr.max()), 'mean': float(1000 * jerr.mean())},
        'dp_vertices_from_borders': int(before), 'landmarks': {k: LANDMARK_VERTS[k] for k in chosen},
    }
    (out_dir / 'STANDIN.md').write_text(STANDIN_MD)
    (out_dir / 'build_report.json').write_text(json.dumps(report, indent=1) + '\n')
    if preview is not None:
        for path in render_previews(preview, neutral_v, faces, weights, neutral_j):
            logger.info('preview %s', path)
    logger.info('done in %.1f s', time.time() - t0)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='assets/standin', help='output folder (committed sources)')
    parser.add_argument('--samples', type=int, default=300, help='random adult bodies per gender for the shape space')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the phenotype samples')
    parser.add_argument('--preview', default=None, help='also render front/side PNGs of the neutral body here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    os.environ.setdefault('ANNY_CACHE_DIR', str(pathlib.Path.home() / '.cache' / 'anny'))
    build(pathlib.Path(args.out), args.samples, args.seed, pathlib.Path(args.preview) if args.preview else None)


if __name__ == '__main__':
    main()
