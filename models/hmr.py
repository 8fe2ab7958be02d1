"""The HMR/SPIN baseline regressor: ResNet-50 global feature and three iterative error-feedback steps."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from core import path_config
from models.pose_resnet import PoseResNet
from models.pymaf_net import add_ief_layers, ief_step, load_mean_params
from utils.geometry import rot6d_to_rotmat


class HMR(nn.Module):
    """SPIN's regressor (Kolotouros et al., ICCV 2019).

    ``forward(x (B,3,224,224), n_iter=3)`` returns ``(rotmat (B,24,3,3), betas (B,10), cam (B,3))``.
    """

    def __init__(self, mean_params: dict[str, torch.Tensor], pretrained: bool = True):
        super().__init__()
        self.feature_extractor = PoseResNet()
        if pretrained:
            self.feature_extractor.load_imagenet(path_config.RESNET50_IMAGENET)
        add_ief_layers(self, 2048)
        self.register_buffer('init_pose', mean_params['pose'])
        self.register_buffer('init_shape', mean_params['shape'])
        self.register_buffer('init_cam', mean_params['cam'])

    def forward(self, x: torch.Tensor, n_iter: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        _, feat = self.feature_extractor(x)
        pose, shape, cam = (self.init_pose.expand(batch, -1), self.init_shape.expand(batch, -1),
                            self.init_cam.expand(batch, -1))
        for _ in range(n_iter):
            pose, shape, cam = ief_step(self, feat, pose, shape, cam)
        return rot6d_to_rotmat(pose).reshape(batch, 24, 3, 3), shape, cam


def hmr(smpl_mean_params: str | Path | None = None, pretrained: bool = True) -> HMR:
    """Build the HMR baseline with the SPIN mean parameters (the body model's when the path is absent)."""
    path = Path(smpl_mean_params) if smpl_mean_params else None
    if path is None or not path.is_file():
        path = path_config.body_model_paths().smpl_mean_params
    return HMR(load_mean_params(path), pretrained=pretrained)
