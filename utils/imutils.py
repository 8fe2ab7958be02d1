"""Crop, keypoint and pose transforms with the SPIN/PyMAF conventions (training and evaluation crops).

A person box is ``center`` (2,) in pixels and ``scale`` = box side / 200, so the square crop covers
``200 * scale`` pixels. Keypoint transforms use the original's 1-based pixel convention and truncate
to integers (``astype(int)``), exactly as the released checkpoint was trained; do not "fix" that here
or ground-truth keypoints move by up to a pixel.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from core import constants

# Pixel size that ``scale`` is expressed in (box side = 200 * scale).
SCALE_UNIT_PX = 200.0


def get_transform(center: np.ndarray, scale: float, res: tuple[int, int] | list[int], rot: float = 0) -> np.ndarray:
    """Affine matrix from original-image pixels to crop pixels.

    Args:
        center: (2,) box centre in pixels (x, y).
        scale: box side / 200.
        res: crop size (width, height) in pixels.
        rot: in-plane rotation in degrees (the crop is rotated by ``-rot`` about its centre).

    Returns:
        (3, 3) homogeneous transform.
    """
    box_px = SCALE_UNIT_PX * scale
    t = np.zeros((3, 3))
    t[0, 0] = float(res[1]) / box_px
    t[1, 1] = float(res[0]) / box_px
    t[0, 2] = res[1] * (-float(center[0]) / box_px + 0.5)
    t[1, 2] = res[0] * (-float(center[1]) / box_px + 0.5)
    t[2, 2] = 1
    if rot != 0:
        rot_rad = -rot * np.pi / 180
        sn, cs = np.sin(rot_rad), np.cos(rot_rad)
        rot_mat = np.array([[cs, -sn, 0], [sn, cs, 0], [0, 0, 1]])
        to_origin = np.eye(3)
        to_origin[0, 2] = -res[1] / 2
        to_origin[1, 2] = -res[0] / 2
        back = np.eye(3)
        back[:2, 2] = -to_origin[:2, 2]
        t = back @ rot_mat @ to_origin @ t
    return t


def transform(pt: np.ndarray, center: np.ndarray, scale: float, res: tuple[int, int] | list[int],
              invert: bool = False, rot: float = 0) -> np.ndarray:
    """Map one point between original-image and crop pixels (1-based convention, integer truncation).

    Args:
        pt: (2,) point in 1-based pixels.
        center, scale, res, rot: as in :func:`get_transform`.
        invert: map from crop to original image instead.

    Returns:
        (2,) int array, 1-based pixels in the target frame.
    """
    t = get_transform(center, scale, res, rot=rot)
    if invert:
        t = np.linalg.inv(t)
    new_pt = np.array([pt[0] - 1, pt[1] - 1, 1.0])
    new_pt = t @ new_pt
    return new_pt[:2].astype(int) + 1


def _crop_window(center: np.ndarray, scale: float, res: tuple[int, int] | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Upper-left and bottom-right corners (0-based px, exclusive br) of the crop window."""
    ul = np.array(transform([1, 1], center, scale, res, invert=True)) - 1
    br = np.array(transform([res[0] + 1, res[1] + 1], center, scale, res, invert=True)) - 1
    return ul, br


def _paste(src: np.ndarray, dst: np.ndarray, ul: np.ndarray, br: np.ndarray, into_window: bool) -> None:
    """Copy the overlap of an image and a window (ul, br) between the two, in place.

    ``into_window=True`` copies image pixels into ``dst`` laid out as the window; otherwise window pixels
    from ``src`` go back into the image ``dst``.
    """
    img_h, img_w = (src.shape[:2] if into_window else dst.shape[:2])
    new_x = max(0, -ul[0]), min(br[0], img_w) - ul[0]
    new_y = max(0, -ul[1]), min(br[1], img_h) - ul[1]
    old_x = max(0, ul[0]), min(img_w, br[0])
    old_y = max(0, ul[1]), min(img_h, br[1])
    if new_x[1] <= new_x[0] or new_y[1] <= new_y[0]:
        return
    if into_window:
        dst[new_y[0]:new_y[1], new_x[0]:new_x[1]] = src[old_y[0]:old_y[1], old_x[0]:old_x[1]]
    else:
        dst[old_y[0]:old_y[1], old_x[0]:old_x[1]] = src[new_y[0]:new_y[1], new_x[0]:new_x[1]]


def crop(img: np.ndarray, center: np.ndarray, scale: float, res: tuple[int, int] | list[int],
         rot: float = 0) -> np.ndarray:
    """Crop a square box, rotate it in-plane and resize it to ``res`` (regions outside the image are 0).

    Args:
        img: (H, W, 3) or (H, W) image, values 0-255 (any numeric dtype).
        center: (2,) box centre in pixels.
        scale: box side / 200.
        res: output size (width, height).
        rot: rotation in degrees (skimage convention, counter-clockwise on screen).

    Returns:
        (res[1], res[0], C) uint8-valued float array (bicubic PIL resize of the 8-bit crop).
    """
    from skimage.transform import rotate

    ul, br = _crop_window(center, scale, res)
    pad = int(np.linalg.norm(br - ul) / 2 - float(br[1] - ul[1]) / 2)
    if rot != 0:
        ul = ul - pad
        br = br + pad
    new_shape = [int(br[1] - ul[1]), int(br[0] - ul[0])] + list(img.shape[2:])
    new_img = np.zeros(new_shape)
    _paste(img, new_img, ul, br, into_window=True)
    if rot != 0:
        new_img = rotate(new_img, rot)
        if pad > 0:
            new_img = new_img[pad:-pad, pad:-pad]
    pil = Image.fromarray(np.clip(new_img, 0, 255).astype(np.uint8))
    return np.asarray(pil.resize((int(res[0]), int(res[1])), Image.BICUBIC)).astype(np.float64)


def uncrop(img: np.ndarray, center: np.ndarray, scale: float, orig_shape: tuple[int, int]) -> np.ndarray:
    """Paste a crop back into an empty image of the original size (inverse of :func:`crop` without rotation).

    Nearest-neighbour resampling, so label maps keep their labels (used for the LSP mask evaluation).

    Args:
        img: (h, w) or (h, w, C) crop.
        center, scale: the box the crop was taken from.
        orig_shape: (H, W) of the original image.

    Returns:
        (H, W[, C]) array of ``img``'s dtype, zeros outside the box.
    """
    res = img.shape[:2]
    ul, br = _crop_window(center, scale, res)
    crop_shape = (int(br[1] - ul[1]), int(br[0] - ul[0]))
    resized = np.asarray(Image.fromarray(img).resize((crop_shape[1], crop_shape[0]), Image.NEAREST))
    new_img = np.zeros(tuple(orig_shape[:2]) + img.shape[2:], dtype=img.dtype)
    _paste(resized, new_img, ul, br, into_window=False)
    return new_img


def rot_aa(pose_aa: np.ndarray, rot: float) -> np.ndarray:
    """Rotate a global orientation (axis-angle) in the image plane by ``-rot`` degrees about the camera z.

    Args:
        pose_aa: (3,) axis-angle, radians.
        rot: degrees, the crop rotation.

    Returns:
        (3,) axis-angle.
    """
    from scipy.spatial.transform import Rotation

    rot_rad = -np.deg2rad(rot)
    rot_z = np.array([[np.cos(rot_rad), -np.sin(rot_rad), 0], [np.sin(rot_rad), np.cos(rot_rad), 0], [0, 0, 1]])
    rotmat = rot_z @ Rotation.from_rotvec(np.asarray(pose_aa, dtype=np.float64)).as_matrix()
    return Rotation.from_matrix(rotmat).as_rotvec()


def flip_img(img: np.ndarray) -> np.ndarray:
    """Mirror an (H, W[, C]) image left-right."""
    return np.fliplr(img).copy()


def flip_kp(kp: np.ndarray) -> np.ndarray:
    """Mirror keypoints in normalised or centred coordinates: swap left/right and negate x.

    Args:
        kp: (24, D) J24 or (49, D) J49 joints, x in column 0 (already centred: x -> -x is the mirror).

    Returns:
        Flipped copy of the same shape.
    """
    if len(kp) == 24:
        perm = constants.J24_FLIP_PERM
    elif len(kp) == 49:
        perm = constants.J49_FLIP_PERM
    else:
        raise ValueError(f'flip_kp expects 24 or 49 joints, got {len(kp)}')
    kp = kp[perm].copy()
    kp[:, 0] = -kp[:, 0]
    return kp


def flip_pose(pose_aa: np.ndarray) -> np.ndarray:
    """Mirror a 72-dim SMPL axis-angle pose: swap left/right joints and negate the y and z components."""
    pose_aa = pose_aa[constants.SMPL_POSE_FLIP_PERM].copy()
    pose_aa[1::3] = -pose_aa[1::3]
    pose_aa[2::3] = -pose_aa[2::3]
    return pose_aa
