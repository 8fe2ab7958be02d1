"""PyMAF's training losses (the original's terms; weights and schedule in docs/training.md), as pure functions
of predictions and labels.

Every function returns a scalar tensor; when no sample of the batch carries the label a term needs, the term
is an exact zero that still depends on the prediction (so distributed training sees every parameter used).
Weights are applied by the caller (`core.trainer.compute_losses`) from the ``LOSS`` config.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.geometry import batch_rodrigues

# Indices of the left and right hips in the 24 ground-truth joints (their mid-point is the 3D root).
LEFT_HIP_J24, RIGHT_HIP_J24 = 2, 3


def _zero_like(pred: torch.Tensor) -> torch.Tensor:
    return pred.sum() * 0.0


def keypoint_2d_loss(pred_kp_2d: torch.Tensor, gt_kp_2d: torch.Tensor, openpose_weight: float,
                     gt_weight: float) -> torch.Tensor:
    """Confidence-weighted squared error of the 49 projected joints.

    Args:
        pred_kp_2d: (B, 49, 2) predicted joints in normalised crop coordinates [-1, 1].
        gt_kp_2d: (B, 49, 3) labels [x, y, visibility], same coordinates; joints 0-24 are OpenPose's,
            25-48 the ground-truth set.
        openpose_weight, gt_weight: multipliers of the two joint sets' visibilities.

    Returns:
        mean over batch, joints and both coordinates of ``conf * (pred - gt)^2``.
    """
    conf = gt_kp_2d[..., -1:].clone()
    conf[:, :25] *= openpose_weight
    conf[:, 25:] *= gt_weight
    return (conf * (pred_kp_2d - gt_kp_2d[..., :-1]) ** 2).mean()


def keypoint_3d_loss(pred_kp_3d: torch.Tensor, gt_kp_3d: torch.Tensor, has_pose_3d: torch.Tensor) -> torch.Tensor:
    """Squared error of the 24 ground-truth 3D joints, both sets centred at the mid-point of the hips.

    Args:
        pred_kp_3d: (B, 49, 3) predicted joints, metres (the last 24 are compared).
        gt_kp_3d: (B, 24, 4) labels [x, y, z, confidence], metres.
        has_pose_3d: (B,) 1 for samples with 3D labels.

    Returns:
        mean over the labelled samples' joints and coordinates of ``conf * (pred - gt)^2``; 0 if none.
    """
    keep = has_pose_3d > 0
    if not keep.any():
        return _zero_like(pred_kp_3d)
    pred = pred_kp_3d[keep][:, 25:]
    gt = gt_kp_3d[keep]
    conf = gt[..., -1:]
    gt = gt[..., :-1]
    gt = gt - (gt[:, LEFT_HIP_J24] + gt[:, RIGHT_HIP_J24])[:, None] / 2
    pred = pred - (pred[:, LEFT_HIP_J24] + pred[:, RIGHT_HIP_J24])[:, None] / 2
    return (conf * (pred - gt) ** 2).mean()


def smpl_losses(pred_rotmat: torch.Tensor, pred_betas: torch.Tensor, gt_pose_aa: torch.Tensor,
                gt_betas: torch.Tensor, has_smpl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error of the rotation matrices and of the shape, over samples with SMPL labels.

    Args:
        pred_rotmat: (B, 24, 3, 3) predicted joint rotations.
        pred_betas: (B, 10) predicted shape.
        gt_pose_aa: (B, 72) axis-angle labels (radians).
        gt_betas: (B, 10) shape labels.
        has_smpl: (B,) 1 for samples with SMPL labels.

    Returns:
        ``(pose_loss, betas_loss)``: means over all matrix elements (shape coefficients) of the labelled
        samples; zeros if none.
    """
    keep = has_smpl > 0
    if not keep.any():
        return _zero_like(pred_rotmat), _zero_like(pred_betas)
    gt_rotmat = batch_rodrigues(gt_pose_aa[keep].reshape(-1, 3)).reshape(-1, 24, 3, 3)
    return F.mse_loss(pred_rotmat[keep], gt_rotmat.to(pred_rotmat)), F.mse_loss(pred_betas[keep],
                                                                                   gt_betas[keep].to(pred_betas))


def vertex_loss(pred_verts: torch.Tensor, gt_verts: torch.Tensor, has_smpl: torch.Tensor) -> torch.Tensor:
    """Mean absolute vertex error (metres) over samples with SMPL labels; 0 if none.

    Args:
        pred_verts, gt_verts: (B, 6890, 3) vertices.
        has_smpl: (B,) 1 for samples with SMPL labels.
    """
    keep = has_smpl > 0
    if not keep.any():
        return _zero_like(pred_verts)
    return F.l1_loss(pred_verts[keep], gt_verts[keep].to(pred_verts))


def camera_loss(pred_cam: torch.Tensor) -> torch.Tensor:
    """``mean(exp(-10 s)^2)`` over the batch: keeps the weak-perspective scale s of (B, 3) [s, tx, ty] positive."""
    return (torch.exp(-pred_cam[:, 0] * 10) ** 2).mean()


def body_uv_losses(pred: dict[str, torch.Tensor], index_gt: torch.Tensor, ann_gt: torch.Tensor, u_gt: torch.Tensor,
                   v_gt: torch.Tensor, point_weight: float) -> dict[str, torch.Tensor]:
    """DensePose losses of the auxiliary IUV head (unweighted cross-entropies, weighted U/V terms).

    Args:
        pred: the head's output: ``predict_uv_index`` (B, 25, H, W), ``predict_ann_index`` (B, 15, H, W),
            ``predict_u`` and ``predict_v`` (B, 25, H, W).
        index_gt: (B, 25, H, W) one-hot part index (channel 0 = background), from `utils.iuvmap.iuv_img2map`.
        ann_gt: (B, 15, H, W) one-hot coarse segmentation.
        u_gt, v_gt: (B, 25, H, W) U and V in the channel of each pixel's part.
        point_weight: weight of the U and V terms (``LOSS.POINT_REGRESSION_WEIGHTS``).

    Returns:
        ``{'index', 'ann', 'u', 'v'}``: the 25-class and 15-class cross-entropies over all pixels, and the
        smooth-L1 U/V errors summed over every (pixel, channel) where the one-hot index is set (the
        background channel at background pixels, target 0, included as the original), divided by the batch
        size and multiplied by ``point_weight``.
    """
    batch = index_gt.shape[0]
    index_loss = F.cross_entropy(pred['predict_uv_index'], index_gt.argmax(dim=1))
    ann_loss = F.cross_entropy(pred['predict_ann_index'], ann_gt.argmax(dim=1))
    selected = index_gt > 0
    u_loss = F.smooth_l1_loss(pred['predict_u'][selected], u_gt[selected], reduction='sum') / batch
    v_loss = F.smooth_l1_loss(pred['predict_v'][selected], v_gt[selected], reduction='sum') / batch
    return {'index': index_loss, 'ann': ann_loss, 'u': u_loss * point_weight, 'v': v_loss * point_weight}
