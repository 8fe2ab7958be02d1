"""Optional temporal smoothing of per-frame predictions with the One-Euro filter (Casiez et al., CHI 2012).

The One-Euro filter is a low-pass filter whose cut-off frequency rises with the speed of the signal:
slow motion is smoothed strongly (less jitter), fast motion lightly (less lag). Parameters:
``min_cutoff`` (Hz, lower = smoother when still), ``beta`` (how fast the cut-off grows with speed) and
``d_cutoff`` (Hz, cut-off of the speed estimate).

Rotations are not filtered as axis-angle vectors (they jump at pi and near 0 the direction is
undefined): each joint rotation is turned into a unit quaternion, the sign is made continuous over time
(q and -q are the same rotation), the four components are filtered and renormalised, then converted
back to axis-angle. The demo applies it to the pose (72 axis-angle numbers), the shape and the crop
camera of each track; it is off by default, so default outputs equal frame-by-frame PyMAF.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """The One-Euro filter fed one sample at a time (a sample is any array; each element is filtered).

    Args:
        fps: sample rate in Hz.
        min_cutoff: minimum cut-off frequency in Hz.
        beta: speed coefficient (units of the signal: cut-off += beta * |speed|).
        d_cutoff: cut-off of the derivative in Hz.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.dt = 1.0 / float(fps)
        self.min_cutoff, self.beta = min_cutoff, beta
        self.a_d = _alpha(d_cutoff, self.dt)
        self.last: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None

    def __call__(self, sample: np.ndarray) -> np.ndarray:
        """The filtered value (float64) of the next sample; the first sample passes unchanged."""
        x = np.asarray(sample, dtype=np.float64)
        if self.last is None:
            self.last, self.dx_prev = x.copy(), np.zeros_like(x)
            return self.last.copy()
        dx = (x - self.last) / self.dt
        dx_hat = self.a_d * dx + (1 - self.a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * self.dt))
        self.last = a * x + (1 - a) * self.last
        self.dx_prev = dx_hat
        return self.last.copy()


def one_euro(signal: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
             d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter along the first axis of (T, ...) samples at a constant rate (see `OneEuro`); returns
    the (T, ...) filtered signal (float64), the first sample unchanged."""
    x = np.asarray(signal, dtype=np.float64)
    step = OneEuro(fps, min_cutoff, beta, d_cutoff)
    return np.stack([step(sample) for sample in x]) if len(x) else x.copy()


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 4) unit quaternion [w, x, y, z]."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = angle / 2
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle ** 2 / 48, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """(..., 4) quaternion [w, x, y, z] (any norm) -> (..., 3) axis-angle with angle in [0, pi]."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    q = np.where(q[..., :1] < 0, -q, q)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half < 1e-8, 2.0, angle / np.maximum(sin_half, 1e-12))
    return q[..., 1:] * scale


def make_sign_continuous(quat: np.ndarray) -> np.ndarray:
    """Flip quaternions (T, ..., 4) along time so each is in the same hemisphere as the previous one."""
    q = np.array(quat, dtype=np.float64)
    for t in range(1, len(q)):
        q[t] = same_hemisphere(q[t], q[t - 1])
    return q


def same_hemisphere(quat: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``quat`` (..., 4), each flipped where it points away from ``previous`` (q and -q are one rotation)."""
    return np.where((quat * previous).sum(axis=-1, keepdims=True) < 0, -quat, quat)


def smooth_pose_aa(pose_aa: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05) -> np.ndarray:
    """Smooth axis-angle poses over time in quaternion space.

    Args:
        pose_aa: (T, 72) or (T, J, 3) axis-angle per joint, radians.
        fps: frame rate in Hz.

    Returns:
        Smoothed poses with the input's shape, float32.
    """
    pose_aa = np.asarray(pose_aa)
    shape = pose_aa.shape
    quat = make_sign_continuous(axis_angle_to_quat(pose_aa.reshape(shape[0], -1, 3)))
    quat = one_euro(quat, fps, min_cutoff, beta)
    return quat_to_axis_angle(quat).reshape(shape).astype(np.float32)


def smooth_track(pose_aa: np.ndarray, betas: np.ndarray, pred_cam: np.ndarray, fps: float,
                 min_cutoff: float = 1.0, beta: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth one person's pose (T, 72), shape (T, 10) and crop camera (T, 3) over consecutive frames."""
    smoother = TrackSmoother(fps, min_cutoff, beta)
    steps = [smoother(p, b, c) for p, b, c in zip(pose_aa, betas, pred_cam)]
    if not steps:
        return (np.asarray(pose_aa, np.float32), np.asarray(betas, np.float32), np.asarray(pred_cam, np.float32))
    return tuple(np.stack(part) for part in zip(*steps))


class TrackSmoother:
    """`smooth_track` fed one frame at a time: ``smoother(pose_aa (72,), betas (10,), pred_cam (3,))`` returns
    the smoothed triple (float32); the first frame passes unchanged. One per person and run of frames."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        self.filters = [OneEuro(fps, min_cutoff, beta) for _ in range(3)]
        self.last_quat: np.ndarray | None = None

    def __call__(self, pose_aa: np.ndarray, betas: np.ndarray, pred_cam: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pose_aa = np.asarray(pose_aa)
        quat = axis_angle_to_quat(pose_aa.reshape(-1, 3))
        if self.last_quat is not None:
            quat = same_hemisphere(quat, self.last_quat)
        self.last_quat = quat
        pose = quat_to_axis_angle(self.filters[0](quat)).reshape(pose_aa.shape).astype(np.float32)
        return pose, self.filters[1](betas).astype(np.float32), self.filters[2](pred_cam).astype(np.float32)
