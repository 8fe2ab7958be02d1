"""HRNet-style affine box transforms, used by the COCO keypoint evaluation to map crop pixels back.

``scale`` is (2,) box size / 200 per axis, as in the COCO evaluation of the original; the affine is
defined by three point pairs (box centre, a point half a box above it, and the perpendicular point).
"""
from __future__ import annotations

import numpy as np

SCALE_UNIT_PX = 200.0


def _rotate_2d(point: np.ndarray, rot_rad: float) -> np.ndarray:
    """Rotate a 2D vector counter-clockwise (in y-up terms) by ``rot_rad`` radians."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes (a, b, c) a right angle at b with |bc| = |ab|."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def get_affine_transform(center: np.ndarray, scale: np.ndarray | float, rot: float,
                         output_size: tuple[int, int] | list[int], inv: bool = False) -> np.ndarray:
    """Affine matrix (2, 3) from original-image pixels to an ``output_size`` crop (or back with ``inv``).

    Args:
        center: (2,) box centre, pixels.
        scale: (2,) or scalar box size / 200.
        rot: rotation in degrees.
        output_size: (width, height) of the crop.
        inv: return the crop-to-image transform instead.

    Returns:
        (2, 3) float matrix.
    """
    import cv2

    scale_px = np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,)) * SCALE_UNIT_PX
    src_w = scale_px[0]
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rot_rad = np.pi * rot / 180
    src_dir = _rotate_2d(np.array([0.0, src_w * -0.5]), rot_rad)
    dst_dir = np.array([0.0, dst_w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = np.asarray(center, dtype=np.float64) + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_transform(pt: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to one (2,) point."""
    return t @ np.array([pt[0], pt[1], 1.0])


def transform_preds(coords: np.ndarray, center: np.ndarray, scale: np.ndarray | float,
                    output_size: tuple[int, int] | list[int]) -> np.ndarray:
    """Map keypoints from crop pixels back to original-image pixels.

    Args:
        coords: (K, >=2) keypoints in crop pixels; extra columns are copied unchanged.
        center: (2,) box centre, pixels.
        scale: (2,) or scalar box size / 200.
        output_size: (width, height) of the crop.

    Returns:
        (K, >=2) keypoints in original-image pixels.
    """
    target = np.array(coords, dtype=np.float64, copy=True)
    trans = get_affine_transform(center, scale, 0, output_size, inv=True)
    homogeneous = np.concatenate([target[:, :2], np.ones((len(target), 1))], axis=1)
    target[:, :2] = homogeneous @ trans.T
    return target
