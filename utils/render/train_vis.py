"""Image grids for TensorBoard: input crop | GT mesh | GT IUV | predicted IUV | predicted mesh, one row per sample."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core import constants
from utils.geometry import weak_cam_to_cam_t
from utils.render.renderer import PyRenderer


def denormalize(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) ImageNet-normalised crops -> (B, H, W, 3) uint8 RGB."""
    mean = torch.tensor(constants.IMG_NORM_MEAN, device=images.device)[None, :, None, None]
    std = torch.tensor(constants.IMG_NORM_STD, device=images.device)[None, :, None, None]
    rgb = (images.float() * std + mean).clamp(0, 1)
    return (rgb.permute(0, 2, 3, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def iuv_to_rgb(iuv: torch.Tensor, size: int) -> np.ndarray:
    """(B, 3, h, w) IUV maps in [0, 1] -> (B, size, size, 3) uint8 (I, U, V as R, G, B), nearest upsampling."""
    up = F.interpolate(iuv.float(), size=(size, size), mode='nearest').clamp(0, 1)
    return (up.permute(0, 2, 3, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


class MeshGrid:
    """Renders meshes over crops in the crop camera (focal 5000 px, principal point at the centre).

    Args:
        faces: (F, 3) body-model faces.
        img_res: crop side, px.
    """

    def __init__(self, faces: np.ndarray | torch.Tensor, img_res: int = constants.IMG_RES) -> None:
        self.img_res = img_res
        self.renderer = PyRenderer(faces=faces, resolution=(img_res, img_res), focal_length=constants.FOCAL_LENGTH)

    def overlay(self, crops: np.ndarray, verts: torch.Tensor, cam: torch.Tensor) -> list[np.ndarray]:
        """Meshes (B, V, 3) with crop cameras (B, 3) [s, tx, ty] drawn over (B, H, W, 3) uint8 crops."""
        cam_t = weak_cam_to_cam_t(cam.detach().float().cpu(), constants.FOCAL_LENGTH, self.img_res).numpy()
        verts = verts.detach().float().cpu().numpy()
        return [self.renderer(verts[i], frame=crops[i], cam_t=cam_t[i]) for i in range(len(crops))]

    def training_grid(self, images: torch.Tensor, gt_verts: torch.Tensor, gt_cam: torch.Tensor,
                      pred_verts: torch.Tensor, pred_cam: torch.Tensor, gt_iuv: torch.Tensor | None = None,
                      pred_iuv: torch.Tensor | None = None, max_samples: int = 16) -> np.ndarray:
        """(rows * H, cols * W, 3) uint8 grid; the IUV columns only when both maps are given."""
        n = min(max_samples, images.shape[0])
        crops = denormalize(images[:n])
        columns = [list(crops), self.overlay(crops, gt_verts[:n], gt_cam[:n])]
        if gt_iuv is not None and pred_iuv is not None:
            columns += [list(iuv_to_rgb(gt_iuv[:n], self.img_res)), list(iuv_to_rgb(pred_iuv[:n], self.img_res))]
        columns.append(self.overlay(crops, pred_verts[:n], pred_cam[:n]))
        return np.concatenate([np.concatenate(row, axis=1) for row in zip(*columns)], axis=0)

    def prediction_grid(self, images: torch.Tensor, pred_verts: torch.Tensor, pred_cam: torch.Tensor,
                        max_samples: int = 16) -> np.ndarray:
        """Validation grid: input | predicted mesh, one row per sample."""
        n = min(max_samples, images.shape[0])
        crops = denormalize(images[:n])
        rows = zip(crops, self.overlay(crops, pred_verts[:n], pred_cam[:n]))
        return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
