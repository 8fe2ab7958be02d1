"""Keypoint fitting: refine regressed body-model parameters so that the mesh's joints meet detected keypoints.

The regressor's pose, shape and crop camera are the start of a short batched optimisation (Adam) over
every person-frame at once, with these terms:
- **2D reprojection**: the model's joints, projected by the crop camera, against the 2D keypoints (crop
  coordinates in [-1, 1]), each weighted by the keypoint's visibility, under a robust Geman-McClure
  penalty (a wrong keypoint pulls little);
- **3D bone directions**: the directions of the limbs, the shoulder line, the hip line and the trunk
  against those of the detector's 3D landmarks (metres, camera axes), weighted by the visibility of both
  ends: this fixes what the 2D term cannot see, which way the body faces and which limb is in front;
- **regularisers**: the pose and shape stay near the regressor's answer (it is the prior: a plausible body
  close to the image evidence), the shape near the mean, and every joint's local axis-angle stays inside
  `JOINT_LIMITS` (a penalty while optimising, a clamp at the end), so elbows and knees bend only the human way.
A person-frame without keypoints (``has_keypoints`` False) keeps the regressor's output unchanged.

Joint correspondences: `BLAZEPOSE_TO_J49` maps the 33 BlazePose landmarks to the model's 49 joints (the LSP
limb joints for the limbs, OpenPose points for the face and feet); see ``utils/video/blazepose.py``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from utils.geometry import batch_rodrigues, projection

logger = logging.getLogger(__name__)

# BlazePose landmark index -> index in the model's 49 joints (core.constants.JOINT_NAMES).
BLAZEPOSE_TO_J49 = {
    0: 0,    # nose -> OP Nose
    5: 15,   # right eye -> OP REye
    2: 16,   # left eye -> OP LEye
    8: 17,   # right ear -> OP REar
    7: 18,   # left ear -> OP LEar
    31: 19,  # left foot index -> OP LBigToe
    29: 21,  # left heel -> OP LHeel
    32: 22,  # right foot index -> OP RBigToe
    30: 24,  # right heel -> OP RHeel
    28: 25, 26: 26, 24: 27, 23: 28, 25: 29, 27: 30,  # right ankle, knee, hip, left hip, knee, ankle
    16: 31, 14: 32, 12: 33, 11: 34, 13: 35, 15: 36,  # right wrist, elbow, shoulder, left shoulder, elbow, wrist
}
SOURCE_IDS = np.array(list(BLAZEPOSE_TO_J49.keys()))
TARGET_IDS = np.array(list(BLAZEPOSE_TO_J49.values()))

# Bones compared in 3D, as pairs of BlazePose landmarks (their model joints follow from BLAZEPOSE_TO_J49);
# the trunk (mid-hip -> mid-shoulder) is added separately.
BONES = ((12, 14), (14, 16), (11, 13), (13, 15), (24, 26), (26, 28), (23, 25), (25, 27), (11, 12), (23, 24))

# Limits of each SMPL joint's local axis-angle components, radians: rows are joints 1..23 (the global
# orientation is free), columns (x min, x max, y min, y max, z min, z max). SMPL's rest frame has x to
# the body's left, y up, z forward: knees flex about +x, hips flex forward about -x, the left elbow
# flexes about -y and the right elbow about +y.
_WIDE = (-1.2, 1.2, -1.2, 1.2, -1.2, 1.2)
JOINT_LIMITS = np.array([
    (-2.6, 1.0, -1.0, 1.0, -1.3, 0.9),    # 1 left hip
    (-2.6, 1.0, -1.0, 1.0, -0.9, 1.3),    # 2 right hip
    (-0.7, 1.0, -0.7, 0.7, -0.6, 0.6),    # 3 spine1
    (-0.1, 2.7, -0.4, 0.4, -0.4, 0.4),    # 4 left knee
    (-0.1, 2.7, -0.4, 0.4, -0.4, 0.4),    # 5 right knee
    (-0.5, 0.7, -0.5, 0.5, -0.4, 0.4),    # 6 spine2
    (-0.9, 0.9, -0.6, 0.6, -0.6, 0.6),    # 7 left ankle
    (-0.9, 0.9, -0.6, 0.6, -0.6, 0.6),    # 8 right ankle
    (-0.5, 0.7, -0.5, 0.5, -0.4, 0.4),    # 9 spine3
    (-0.6, 0.6, -0.4, 0.4, -0.4, 0.4),    # 10 left foot
    (-0.6, 0.6, -0.4, 0.4, -0.4, 0.4),    # 11 right foot
    (-0.9, 0.9, -0.9, 0.9, -0.7, 0.7),    # 12 neck
    (-0.6, 0.6, -0.6, 0.6, -0.6, 0.6),    # 13 left collar
    (-0.6, 0.6, -0.6, 0.6, -0.6, 0.6),    # 14 right collar
    (-0.9, 0.9, -0.9, 0.9, -0.7, 0.7),    # 15 head
    (-2.4, 2.4, -2.4, 2.4, -2.4, 2.4),    # 16 left shoulder
    (-2.4, 2.4, -2.4, 2.4, -2.4, 2.4),    # 17 right shoulder
    (-1.6, 1.6, -2.7, 0.1, -0.7, 0.7),    # 18 left elbow
    (-1.6, 1.6, -0.1, 2.7, -0.7, 0.7),    # 19 right elbow
    (-1.6, 1.6, -1.0, 1.0, -1.0, 1.0),    # 20 left wrist
    (-1.6, 1.6, -1.0, 1.0, -1.0, 1.0),    # 21 right wrist
    _WIDE,                                # 22 left hand
    _WIDE,                                # 23 right hand
], dtype=np.float32)


@dataclass
class FitWeights:
    """Weights of the fitting terms (see the module docstring) and the optimiser's settings.

    Attributes:
        keypoints_2d: 2D reprojection (crop units, robust scale ``sigma``).
        bones_3d: 3D bone directions (1 - cosine, summed over bones).
        pose_prior: squared axis-angle distance from the regressor's pose, per body joint.
        orient_prior: the same for the global orientation.
        shape_prior: squared distance from the regressor's shape.
        shape_norm: squared norm of the shape (towards the mean body).
        joint_limits: squared excess beyond `JOINT_LIMITS`.
        sigma: Geman-McClure scale of the 2D term, crop units ([-1, 1] across the crop).
        iterations: Adam steps.
        lr: Adam learning rate of the first step; it falls along a half cosine to ``lr_end`` at the last
            (large steps to get near, small ones to settle: on the real-people bench this reaches in 60
            steps what a constant 0.02 reaches in about 200).
        lr_end: Adam learning rate of the last step.
    """

    keypoints_2d: float = 100.0
    bones_3d: float = 0.5
    pose_prior: float = 0.02
    orient_prior: float = 0.005
    shape_prior: float = 0.01
    shape_norm: float = 0.001
    joint_limits: float = 10.0
    sigma: float = 0.2
    iterations: int = 60
    lr: float = 0.05
    lr_end: float = 0.01


def gmof(squared: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure penalty of squared residuals: ``sigma^2 * r^2 / (sigma^2 + r^2)``."""
    return sigma ** 2 * squared / (sigma ** 2 + squared)


def limit_excess(pose_aa: torch.Tensor) -> torch.Tensor:
    """Squared excess of the body joints' axis-angle beyond `JOINT_LIMITS`; (N, 23, 3) -> (N,)."""
    limits = torch.as_tensor(JOINT_LIMITS, dtype=pose_aa.dtype, device=pose_aa.device).view(23, 3, 2)
    body = pose_aa.view(-1, 24, 3)[:, 1:]
    over = torch.relu(body - limits[..., 1]) + torch.relu(limits[..., 0] - body)
    return (over ** 2).sum(dim=(1, 2))


def clamp_to_limits(pose_aa: torch.Tensor) -> torch.Tensor:
    """Clamp the body joints' axis-angle components into `JOINT_LIMITS`; (N, 72) -> (N, 72)."""
    limits = torch.as_tensor(JOINT_LIMITS, dtype=pose_aa.dtype, device=pose_aa.device).view(23, 3, 2)
    pose = pose_aa.view(-1, 24, 3).clone()
    pose[:, 1:] = torch.maximum(torch.minimum(pose[:, 1:], limits[..., 1]), limits[..., 0])
    return pose.view(-1, 72)


def within_limits(pose_aa: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """(N,) True where every body joint of (N, 72) axis-angle poses lies inside `JOINT_LIMITS`."""
    body = np.asarray(pose_aa).reshape(-1, 24, 3)[:, 1:]
    limits = JOINT_LIMITS.reshape(23, 3, 2)
    return ((body >= limits[..., 0] - tol) & (body <= limits[..., 1] + tol)).all(axis=(1, 2))


def bone_vectors(points: torch.Tensor, pairs: np.ndarray, mids: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    """Unit bone directions: (N, P, 3) points -> (N, B + 1, 3) for ``pairs`` (B, 2) and the trunk from the
    mean of ``mids[0]`` to the mean of ``mids[1]``."""
    vec = points[:, pairs[:, 1]] - points[:, pairs[:, 0]]
    trunk = points[:, mids[1]].mean(1) - points[:, mids[0]].mean(1)
    vec = torch.cat([vec, trunk[:, None]], dim=1)
    return vec / vec.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def align_camera(joints: torch.Tensor, target: torch.Tensor, conf: torch.Tensor, cam: torch.Tensor,
                 min_points: int = 3) -> torch.Tensor:
    """The weak-perspective crop camera that best lays the body's joints onto the keypoints.

    Solves ``min sum_k w_k |s * (X_k + t) - x_k|^2`` over the scale ``s`` and the translation ``t`` in closed
    form (linear in ``s`` and ``s * t``), so the fit starts with the body at the people's place and size
    (the regressor's camera can be far off when its crop shows only part of the person).

    Args:
        joints: (N, K, 3) body joints, metres (their x and y are used).
        target: (N, K, 2) keypoints, crop units.
        conf: (N, K) weights.
        cam: (N, 3) ``[s, tx, ty]`` kept for rows with fewer than ``min_points`` weighted keypoints or a
            degenerate solution.

    Returns:
        (N, 3) cameras ``[s, tx, ty]``.
    """
    w = conf * (conf > 0.1)
    total = w.sum(1).clamp_min(1e-9)
    mean_x = (w[..., None] * joints[..., :2]).sum(1) / total[:, None]
    mean_k = (w[..., None] * target).sum(1) / total[:, None]
    dx, dk = joints[..., :2] - mean_x[:, None], target - mean_k[:, None]
    scale = (w * (dx * dk).sum(-1)).sum(1) / (w * (dx ** 2).sum(-1)).sum(1).clamp_min(1e-9)
    trans = mean_k / scale.clamp_min(1e-6)[:, None] - mean_x
    solved = torch.cat([scale[:, None], trans], dim=1)
    ok = ((w > 0).sum(1) >= min_points) & (scale > 1e-3) & torch.isfinite(solved).all(1)
    return torch.where(ok[:, None], solved, cam)


class Adam:
    """Adam on a few leaf tensors (first moment 0.9, second 0.999, epsilon 1e-8, no weight decay), the
    update torch.optim.Adam makes with its defaults. Written out because constructing torch's optimiser
    imports its compiler stack (over a second on a CPU) on first use, a fixed cost the demo paid per run.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1 ** self.steps
        correction2_sqrt = math.sqrt(1 - beta2 ** self.steps)
        for p, m, v in zip(self.params, self.first, self.second):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(m, (v.sqrt() / correction2_sqrt).add_(self.eps), value=-self.lr / correction1)


def fit_keypoints(smpl: torch.nn.Module, pose_aa: np.ndarray, betas: np.ndarray, cam: np.ndarray,
                  keypoints_crop: np.ndarray, visibility: np.ndarray, world: np.ndarray | None = None,
                  has_keypoints: np.ndarray | None = None, weights: FitWeights | None = None,
                  batch_size: int = 256, device: str | torch.device = 'cpu',
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """Refine poses, shapes and crop cameras to fit BlazePose keypoints (see the module docstring).

    Args:
        smpl: the body model (`models.smpl.SMPL`, official or stand-in: its cheap `joints_only` is used; any
            module with SMPL's call signature returning 49 ``joints`` works).
        pose_aa: (N, 72) regressed axis-angle poses, radians (global orientation first).
        betas: (N, 10) regressed shapes.
        cam: (N, 3) regressed crop cameras ``[s, tx, ty]``.
        keypoints_crop: (N, 33, 2) BlazePose landmarks in the crop's [-1, 1] coordinates.
        visibility: (N, 33) landmark visibility in [0, 1] (0 drops a landmark).
        world: (N, 33, 3) BlazePose world landmarks in metres (camera axes), or None (no 3D term).
        has_keypoints: (N,) bool; False rows are returned unchanged (default: all True).
        weights: the terms' weights and the optimiser's settings.
        batch_size: person-frames optimised together.
        device: where to optimise.

    Returns:
        ``(pose_aa (N, 72), betas (N, 10), cam (N, 3), stats)``; stats holds the mean 2D keypoint error
        (crop units, visibility-weighted) before and after, over the fitted rows.
    """
    weights = weights or FitWeights()
    n = len(pose_aa)
    has = np.ones(n, dtype=bool) if has_keypoints is None else np.asarray(has_keypoints, dtype=bool)
    out_pose = np.array(pose_aa, dtype=np.float32, copy=True)
    out_betas = np.array(betas, dtype=np.float32, copy=True)
    out_cam = np.array(cam, dtype=np.float32, copy=True)
    rows = np.nonzero(has)[0]
    errors = {'before': [], 'after': []}
    device = torch.device(device)
    # The loop's tensors are tiny (a few dozen joints per person): on a CPU, splitting each operation across
    # threads costs more than it gains (10x slower when the other cores are busy), so it runs on one.
    threads = torch.get_num_threads()
    if device.type == 'cpu':
        torch.set_num_threads(1)
    try:
        for start in range(0, len(rows), batch_size):
            idx = rows[start:start + batch_size]
            pose, shape, camera, err = _fit_batch(
                smpl, out_pose[idx], out_betas[idx], out_cam[idx], keypoints_crop[idx], visibility[idx],
                None if world is None else world[idx], weights, device)
            out_pose[idx], out_betas[idx], out_cam[idx] = pose, shape, camera
            errors['before'].append(err[0] * len(idx))
            errors['after'].append(err[1] * len(idx))
    finally:
        torch.set_num_threads(threads)
    count = max(len(rows), 1)
    stats = {'fitted': float(len(rows)), 'error_before': float(sum(errors['before']) / count),
             'error_after': float(sum(errors['after']) / count)}
    return out_pose, out_betas, out_cam, stats


def _fit_batch(smpl, pose0, betas0, cam0, keypoints_crop, visibility, world, weights: FitWeights, device):
    """One batch of `fit_keypoints`; returns the fitted arrays and the 2D error (before, after)."""
    f32 = dict(dtype=torch.float32, device=device)
    pose_init = torch.as_tensor(pose0, **f32)
    betas_init = torch.as_tensor(betas0, **f32)
    target = torch.as_tensor(keypoints_crop[:, SOURCE_IDS], **f32)
    conf = torch.as_tensor(visibility[:, SOURCE_IDS], **f32)
    has_world = world is not None
    if has_world:
        src_pairs = np.array(BONES)
        world_t = torch.as_tensor(world, **f32)
        target_bones = bone_vectors(world_t, src_pairs, (np.array([23, 24]), np.array([11, 12])))
        vis = torch.as_tensor(visibility, **f32)
        bone_conf = torch.cat([torch.minimum(vis[:, src_pairs[:, 0]], vis[:, src_pairs[:, 1]]),
                               vis[:, [11, 12, 23, 24]].min(dim=1, keepdim=True).values], dim=1)
        model_pairs = np.vectorize(BLAZEPOSE_TO_J49.get)(src_pairs)
        model_mids = (np.array([BLAZEPOSE_TO_J49[23], BLAZEPOSE_TO_J49[24]]),
                      np.array([BLAZEPOSE_TO_J49[11], BLAZEPOSE_TO_J49[12]]))

    def joints_of(pose_aa, shape):
        rotmat = batch_rodrigues(pose_aa.reshape(-1, 3)).view(-1, 24, 3, 3)
        if hasattr(smpl, 'joints_only'):
            return smpl.joints_only(shape, rotmat)
        return smpl(betas=shape, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1], pose2rot=False).joints

    with torch.no_grad():
        cam_start = align_camera(joints_of(pose_init, betas_init)[:, TARGET_IDS], target, conf,
                                 torch.as_tensor(cam0, **f32))
    pose = pose_init.clone().requires_grad_(True)
    betas = betas_init.clone().requires_grad_(True)
    cam = cam_start.clone().requires_grad_(True)
    optimizer = Adam([pose, betas, cam], lr=weights.lr)

    def error_2d(joints, camera):
        residual = ((projection(joints, camera)[:, TARGET_IDS] - target) ** 2).sum(-1).sqrt()
        return float(((residual * conf).sum() / conf.sum().clamp_min(1e-6)).detach())

    with torch.no_grad():
        before = error_2d(joints_of(pose_init, betas_init), torch.as_tensor(cam0, **f32))
    for step in range(weights.iterations):
        progress = step / max(weights.iterations - 1, 1)
        optimizer.lr = weights.lr_end + 0.5 * (weights.lr - weights.lr_end) * (1 + math.cos(math.pi * progress))
        optimizer.zero_grad()
        joints = joints_of(pose, betas)
        projected = projection(joints, cam)[:, TARGET_IDS]
        loss = weights.keypoints_2d * (gmof(((projected - target) ** 2).sum(-1), weights.sigma) * conf).sum(1)
        if has_world:
            model_bones = bone_vectors(joints, model_pairs, model_mids)
            loss = loss + weights.bones_3d * ((1 - (model_bones * target_bones).sum(-1)) * bone_conf).sum(1)
        delta = (pose - pose_init).view(-1, 24, 3)
        loss = loss + weights.pose_prior * (delta[:, 1:] ** 2).sum((1, 2))
        loss = loss + weights.orient_prior * (delta[:, 0] ** 2).sum(1)
        loss = loss + weights.shape_prior * ((betas - betas_init) ** 2).sum(1)
        loss = loss + weights.shape_norm * (betas ** 2).sum(1)
        loss = loss + weights.joint_limits * limit_excess(pose)
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():
            cam[:, 0].clamp_(min=1e-3)
    with torch.no_grad():
        pose_final = clamp_to_limits(pose.detach())
        after = error_2d(joints_of(pose_final, betas.detach()), cam.detach())
    return (pose_final.cpu().numpy(), betas.detach().cpu().numpy(), cam.detach().cpu().numpy(), (before, after))
