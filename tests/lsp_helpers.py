"""Helpers shared by the evaluation tests: exact predictions and synthetic LSP-format sets."""
from __future__ import annotations

import numpy as np
import torch

from core import constants
from datasets import synthetic
from utils.geometry import batch_rodrigues
from utils.imutils import _crop_window


def perfect_prediction(batch: dict) -> dict:
    """A model's final ``smpl_out`` entry that reproduces the batch's pose and betas (camera zero)."""
    pose = batch['pose'].float()
    rotmat = batch_rodrigues(pose.reshape(-1, 3)).reshape(-1, 24, 3, 3)
    n = len(pose)
    return {'rotmat': rotmat, 'pred_shape': batch['betas'].float(), 'pred_cam': torch.zeros(n, 3),
            'theta': torch.cat([torch.zeros(n, 3), batch['betas'].float(), pose], dim=1)}


def crop_camera(data: dict, i: int, body_depth: float, img_w: int, img_h: int) -> torch.Tensor:
    """Weak-perspective crop camera [s, tx, ty] that reproduces sample i's full-image camera in its crop."""
    k = 224 / (200 * data['scale'][i])
    s = data['focal_length'][i] * k / (112 * body_depth)
    tx = data['cam_t'][i, 0] + k * (img_w / 2 - 0.5 - data['center'][i, 0]) / (112 * s)
    ty = data['cam_t'][i, 1] + k * (img_h / 2 - 0.5 - data['center'][i, 1]) / (112 * s)
    return torch.tensor([s, tx, ty], dtype=torch.float32)


def neutral_bodies() -> synthetic.BodyModels:
    """The body models with every gender mapped to the neutral one, the model the evaluation predicts with."""
    bodies = synthetic.load_body_models()
    bodies.models = {g: bodies.models['neutral'] for g in ('male', 'female', 'neutral')}
    return bodies


def make_exact_crop_lsp_set(out_dir: str, num_samples: int, seed: int, size: int = 200) -> tuple[str, dict]:
    """Synthetic LSP-format set whose crops are exact pixel windows seen by the crop camera itself.

    Square ``size`` images taken with f = 5000 px, bodies centred on the optical axis, and every box
    rewritten to the image centre with a 224 px side (scale 1.12): the 224 crop is then an unscaled window
    of the image whose camera is the crop camera, so rendering in the crop and uncropping reproduces a
    full-image render pixel for pixel (no resampling). The crop window's corners are truncated to whole
    pixels from a slightly inexact scale, so only some sizes give an exact window (200 does; checked).

    Returns:
        ``(npz_path, data)`` with ``data`` the npz contents (``cam_t`` (N, 3) m, ``focal_length`` (N,) px).
    """
    focal = constants.FOCAL_LENGTH / size
    npz = synthetic.generate_dataset(out_dir, num_samples=num_samples, seed=seed, img_width=size,
                                     img_height=size, save_masks=True, focal_range=(focal, focal),
                                     max_offset=0.0, bodies=neutral_bodies())
    data = dict(np.load(npz))
    data['center'] = np.full((num_samples, 2), size / 2)
    data['scale'] = np.full(num_samples, constants.IMG_RES / 200)
    ul, br = _crop_window(data['center'][0], data['scale'][0], [constants.IMG_RES] * 2)
    if not (np.all(br - ul == constants.IMG_RES) and np.all(ul == size // 2 - constants.IMG_RES // 2)):
        raise ValueError(f'size {size} does not give an exact 224 px crop window (got {ul}, {br})')
    np.savez(npz, **data)
    return npz, data


def exact_crop_cameras(data: dict) -> torch.Tensor:
    """(N, 3) crop cameras [s, tx, ty] whose translation [tx, ty, 2 f / (224 s)] is the image's ``cam_t``."""
    cam_t = torch.from_numpy(data['cam_t']).float()
    scale = 2 * constants.FOCAL_LENGTH / (constants.IMG_RES * cam_t[:, 2])
    return torch.stack([scale, cam_t[:, 0], cam_t[:, 1]], dim=1)
