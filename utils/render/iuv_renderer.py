"""DensePose IUV label maps rendered from SMPL meshes with the weak-perspective crop camera.

This reproduces the conference-era labels that the released checkpoint was trained with (docs/rendering.md):
the SMPL vertices are copied to the DensePose vertices, every DensePose face is painted with
(part id / 24, mean U, mean V) of its corners, no lighting, no anti-aliasing, black background. The
camera is the original's: a pinhole with focal 5000 px and principal point at the centre of the 224 crop,
no rotation, and translation ``[tx, ty, 2 * 5000 / (224 * s)]`` from the crop camera ``[s, tx, ty]``; the
map is rendered at ``output_size`` (56, the DensePose head's resolution) by scaling that crop camera.
Image axes follow the crop: x right, y down, so the map aligns with `utils.geometry.projection`.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from utils.densepose_methods import DensePoseUV, load_densepose_uv
from utils.geometry import perspective_projection, weak_cam_to_cam_t
from utils.render.rasterizer import rasterize

logger = logging.getLogger(__name__)


class IUV_Renderer:  # noqa: N801 (the original's name)
    """Render DensePose IUV maps (B, 3, S, S) from SMPL vertices and crop cameras.

    Args:
        uv_data: the DensePose UV data, or a path to ``UV_Processed.mat`` (the configured one is
            ``core.path_config.UV_PROCESSED``, ``data/UV_data/UV_Processed.mat``).
        focal_length: focal length in pixels of the crop camera (5000 as the original).
        orig_size: side of the crop the camera refers to, pixels (224).
        output_size: side S of the rendered map, pixels (56 = the DensePose head's resolution).
        device: torch device of the buffers; the inputs are moved to it.
    """

    def __init__(
        self,
        uv_data: DensePoseUV | str | os.PathLike,
        focal_length: float = 5000.0,
        orig_size: int = 224,
        output_size: int = 56,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(uv_data, DensePoseUV):
            uv_data = load_densepose_uv(uv_data)
        self.uv_data = uv_data
        self.focal_length = float(focal_length)
        self.orig_size = int(orig_size)
        self.output_size = int(output_size)
        self.device = torch.device(device) if device is not None else torch.device('cpu')
        self.dp_to_smpl = torch.from_numpy(uv_data.dp_to_smpl).to(self.device)
        self.faces = torch.from_numpy(uv_data.faces).to(self.device)
        # Row 0 is the background colour (0, 0, 0); face f is row f + 1.
        texture = np.concatenate([np.zeros((1, 3), np.float32), uv_data.face_texture()])
        self.face_texture = torch.from_numpy(texture).to(self.device)

    def to(self, device: str | torch.device) -> IUV_Renderer:
        """Move the buffers to ``device`` (returns self)."""
        self.device = torch.device(device)
        self.dp_to_smpl = self.dp_to_smpl.to(self.device)
        self.faces = self.faces.to(self.device)
        self.face_texture = self.face_texture.to(self.device)
        return self

    def project(self, verts: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates in the output map of the DensePose vertices.

        Args:
            verts: (B, 6890, 3) SMPL vertices in metres, already rotated into the camera frame (y down).
            cam: (B, 3) weak-perspective crop camera [s, tx, ty].

        Returns:
            (B, V_dp, 3) DensePose vertices as (x_px, y_px, z) in the S x S map, z the camera depth in metres.
        """
        if verts.dim() != 3 or verts.shape[-1] != 3:
            raise ValueError(f'verts must be (B, N, 3) SMPL vertices, got {tuple(verts.shape)}')
        if cam.shape != (verts.shape[0], 3):
            raise ValueError(
                f'cam must be (B, 3) = [s, tx, ty] for B={verts.shape[0]}, got {tuple(cam.shape)}'
            )
        if verts.shape[1] <= int(self.dp_to_smpl.max()):
            raise ValueError(f'the UV data indexes SMPL vertex {int(self.dp_to_smpl.max())}, but verts has '
                             f'only {verts.shape[1]} vertices')
        verts = verts.to(self.device, torch.float32)
        cam_t = weak_cam_to_cam_t(cam.to(self.device, torch.float32), self.focal_length, self.orig_size)
        points = verts[:, self.dp_to_smpl]
        batch = points.shape[0]
        eye = torch.eye(3, device=self.device).expand(batch, 3, 3)
        centre = torch.full((batch, 2), self.orig_size / 2.0, device=self.device)
        xy_crop = perspective_projection(points, eye, cam_t, self.focal_length, centre)
        depth = points[..., 2] + cam_t[:, None, 2]
        return torch.cat([xy_crop * (self.output_size / self.orig_size), depth[..., None]], dim=-1)

    @torch.no_grad()
    def __call__(self, verts: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Render the IUV maps.

        Args:
            verts: (B, 6890, 3) SMPL vertices in metres, in the camera frame (y down), as the model and
                the SMPL layer output them.
            cam: (B, 3) weak-perspective crop camera [s, tx, ty]; a sample with s <= 0 gives an empty map.

        Returns:
            (B, 3, S, S) float32 in [0, 1]: channel 0 = part id / 24 (0 = background), channels 1, 2 = U, V.
        """
        verts_px = self.project(verts, cam)
        face_idx, _, _ = rasterize(verts_px, self.faces, self.output_size, self.output_size)
        iuv = self.face_texture[face_idx + 1]  # (B, S, S, 3)
        return iuv.permute(0, 3, 1, 2).contiguous()
