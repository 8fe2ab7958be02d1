"""Evaluation metrics: MPJPE, PA-MPJPE, PVE, PCK/AUC, segmentation accuracy/F1, running averages.

All 3D metrics return one value per sample in the unit of the inputs (metres in, metres out; eval.py
multiplies by 1000 to report millimetres). Averages over a dataset are taken over samples, as the
original does, but with an exact count (the original's running printouts averaged over
``step * batch_size`` entries, one batch short).
"""
from __future__ import annotations

import numpy as np
import torch

from utils.geometry import compute_similarity_transform

# Thresholds (m) of the MPI-INF-3DHP PCK curve: 0 to 150 mm in 5 mm steps; PCK is read at 150 mm.
PCK_THRESHOLD_M = 0.15
AUC_THRESHOLDS_M = np.linspace(0.0, 0.15, 31)


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f'expected two (B, N, 3) tensors of equal shape, got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}')


def mpjpe(pred_joints: torch.Tensor, gt_joints: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error per sample (no alignment: centre the joints beforehand).

    Args:
        pred_joints: (B, J, 3) predicted joints.
        gt_joints: (B, J, 3) ground-truth joints, same unit.

    Returns:
        (B,) mean Euclidean joint distance per sample.
    """
    _check_pair(pred_joints, gt_joints)
    return torch.linalg.norm(pred_joints - gt_joints, dim=-1).mean(dim=-1)


def pa_mpjpe(pred_joints: torch.Tensor, gt_joints: torch.Tensor) -> torch.Tensor:
    """MPJPE after a per-sample similarity Procrustes alignment of the prediction to the ground truth.

    The "reconstruction error" of SPIN/PyMAF: scale, rotation (reflections excluded) and translation are
    solved per sample in closed form, so the result ignores global scale, orientation and position.

    Args:
        pred_joints: (B, J, 3) predicted joints.
        gt_joints: (B, J, 3) ground-truth joints.

    Returns:
        (B,) aligned mean joint distance per sample.
    """
    _check_pair(pred_joints, gt_joints)
    aligned = compute_similarity_transform(pred_joints.double(), gt_joints.double()).to(pred_joints.dtype)
    return mpjpe(aligned, gt_joints)


def pve(pred_verts: torch.Tensor, gt_verts: torch.Tensor) -> torch.Tensor:
    """Per-vertex error per sample, with no root alignment and no translation (the original's PVE).

    Args:
        pred_verts: (B, V, 3) predicted vertices (model output, camera-centred SMPL frame).
        gt_verts: (B, V, 3) ground-truth vertices in the same frame.

    Returns:
        (B,) mean vertex distance per sample.
    """
    return mpjpe(pred_verts, gt_verts)


def pck(pred_joints: torch.Tensor, gt_joints: torch.Tensor, threshold: float = PCK_THRESHOLD_M) -> torch.Tensor:
    """Percentage of correct keypoints per sample: share of joints closer than ``threshold``.

    Args:
        pred_joints: (B, J, 3) root-centred predicted joints.
        gt_joints: (B, J, 3) root-centred ground-truth joints.
        threshold: distance threshold in the joints' unit (0.15 m for MPI-INF-3DHP).

    Returns:
        (B,) fraction in [0, 1].
    """
    _check_pair(pred_joints, gt_joints)
    dist = torch.linalg.norm(pred_joints - gt_joints, dim=-1)
    return (dist < threshold).double().mean(dim=-1)


def auc(pred_joints: torch.Tensor, gt_joints: torch.Tensor,
        thresholds: np.ndarray = AUC_THRESHOLDS_M) -> torch.Tensor:
    """Area under the PCK curve per sample: PCK averaged over ``thresholds`` (0-150 mm, 31 steps).

    Returns:
        (B,) value in [0, 1].
    """
    _check_pair(pred_joints, gt_joints)
    dist = torch.linalg.norm(pred_joints - gt_joints, dim=-1)
    thr = torch.as_tensor(np.asarray(thresholds), dtype=dist.dtype, device=dist.device)
    return (dist[..., None] < thr).double().mean(dim=(1, 2))


class RunningAverage:
    """Exact running mean over samples (sum and count), for progress printouts and final results."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, values: torch.Tensor | np.ndarray) -> None:
        """Add a batch of per-sample values (any shape; every element counts as one sample)."""
        values = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
        self.total += float(values.sum())
        self.count += int(values.size)

    @property
    def mean(self) -> float:
        """Mean of all values seen so far (nan before the first update)."""
        return self.total / self.count if self.count else float('nan')


class SegmentationScore:
    """Pixel accuracy and mean F1 over classes, accumulated over images (LSP foreground and parts).

    Pixels whose ground truth equals ``ignore_index`` are left out of the F1 counts (the UP-3D part labels
    mark unlabelled pixels with 255). They are left out of the accuracy too, unless
    ``accuracy_ignore_label`` is set: then they stay in it with that ground-truth class, as the original's
    LSP parts accuracy does (255 counts as background, 0). The per-class F1 is 2TP / (2TP + FP + FN) over
    all accumulated pixels, and the mean is taken over all ``num_classes`` classes, background included.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 accuracy_ignore_label: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.accuracy_ignore_label = accuracy_ignore_label
        self.correct = 0
        self.valid = 0
        self.tp = np.zeros(num_classes)
        self.fp = np.zeros(num_classes)
        self.fn = np.zeros(num_classes)

    def update(self, pred_labels: np.ndarray, gt_labels: np.ndarray) -> None:
        """Accumulate one or more label maps of equal shape (integer class ids)."""
        pred_labels = np.asarray(pred_labels)
        gt_labels = np.asarray(gt_labels)
        if pred_labels.shape != gt_labels.shape:
            raise ValueError(f'label maps differ in shape: {pred_labels.shape} vs {gt_labels.shape}')
        valid = np.ones(gt_labels.shape, dtype=bool) if self.ignore_index is None else gt_labels != self.ignore_index
        pred, gt = pred_labels[valid], gt_labels[valid]
        if self.accuracy_ignore_label is None:
            self.correct += int((pred == gt).sum())
            self.valid += int(valid.sum())
        else:
            gt_acc = np.where(valid, gt_labels, self.accuracy_ignore_label)
            self.correct += int((pred_labels == gt_acc).sum())
            self.valid += int(gt_labels.size)
        for c in range(self.num_classes):
            self.tp[c] += np.sum((pred == c) & (gt == c))
            self.fp[c] += np.sum((pred == c) & (gt != c))
            self.fn[c] += np.sum((pred != c) & (gt == c))

    @property
    def accuracy(self) -> float:
        """Share of correctly labelled counted pixels."""
        return self.correct / self.valid if self.valid else float('nan')

    @property
    def mean_f1(self) -> float:
        """Mean over classes of the per-class F1 score (a class never seen nor predicted counts as 0)."""
        denom = 2 * self.tp + self.fp + self.fn
        f1 = np.where(denom > 0, 2 * self.tp / np.maximum(denom, 1), 0.0)
        return float(f1.mean())


def regressed_joints(verts: torch.Tensor, j_regressor_h36m: torch.Tensor, joint_ids: list[int]) -> torch.Tensor:
    """Evaluation joints of a mesh: H36M-regressor joints, pelvis-centred, then selected.

    This is the protocol of every 3D benchmark in the original (J14 = ``constants.H36M_TO_J14`` for
    Human3.6M, 3DPW and 3DOH50K; J17 = ``constants.H36M_TO_J17`` for MPI-INF-3DHP).

    Args:
        verts: (B, 6890, 3) mesh vertices, metres.
        j_regressor_h36m: (17, 6890) H36M joint regressor.
        joint_ids: indices into the 17 regressed joints.

    Returns:
        (B, len(joint_ids), 3) joints minus the regressed pelvis (H36M joint 0), metres.
    """
    joints = torch.einsum('jv,bvc->bjc', j_regressor_h36m.to(verts), verts)
    return joints[:, joint_ids] - joints[:, :1]
