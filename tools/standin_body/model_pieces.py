"""Model pieces: phenotype samples, landmark vertices, the fitted joint regressors and the mean parameters.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import scipy.io
import scipy.optimize
import scipy.sparse as sp
from scipy.spatial import cKDTree

from tools.standin_body.anny_source import AnnySource, axis_angle_to_matrix
from tools.standin_body.constants import FINGER_OF, LANDMARK_VERTS, NUM_BETAS, PHENOTYPE_RANGES, SMPL_PARENTS

logger = logging.getLogger('make_standin_body')


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
    rot = axis_angle_to_matrix(pose_aa)
    rot6d = rot[:, :, :2].reshape(-1)  # original layout: per joint [R00, R01, R10, R11, R20, R21]
    return {'pose': rot6d.astype(np.float64), 'shape': np.zeros(NUM_BETAS), 'cam': np.array([0.9, 0.0, 0.0])}
