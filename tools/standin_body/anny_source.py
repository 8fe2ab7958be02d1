"""The anny side: anny's rest body re-posed into SMPL's T-pose and frame, its bones and skinning, and small
rotation helpers.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from tools.standin_body.constants import segment_of_bone

logger = logging.getLogger('make_standin_body')


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
    return axis_angle_to_matrix(axis * angle[:, None])


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
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
