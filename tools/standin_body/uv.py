"""DensePose-style UV data: 24 body parts per face, sub-charts, and (U, V) by cylindrical and planar projections.
"""
from __future__ import annotations

import logging

import numpy as np

from tools.standin_body.constants import LIMB_PARTS, SEGMENT_GROUP

logger = logging.getLogger('make_standin_body')


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
        the two sub-charts of a foot or a head half lie side by side in U. Left parts are charted in
        mirrored coordinates so that mirror-image parts share one chart (their symmetry transforms are the identity).
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
