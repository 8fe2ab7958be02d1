"""The HMR/SPIN baseline regressor: ResNet-50 global feature and three iterative error-feedback steps."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from core import path_config
from models.pose_resnet import PoseResNet
from models.pymaf_net import NUM_BETAS, NUM_POSE_6D, load_mean_params
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
        self.fc1 = nn.Linear(2048 + NUM_POSE_6D + NUM_BETAS + 3, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, NUM_POSE_6D)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.deccam = nn.Linear(1024, 3)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        self.register_buffer('init_pose', mean_params['pose'])
        self.register_buffer('init_shape', mean_params['shape'])
        self.register_buffer('init_cam', mean_params['cam'])

    def forward(self, x: torch.Tensor, n_iter: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        _, feat = self.feature_extractor(x)
        pose, shape, cam = (self.init_pose.expand(batch, -1), self.init_shape.expand(batch, -1),
                            self.init_cam.expand(batch, -1))
        for _ in range(n_iter):
            xc = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([feat, pose, shape, cam], dim=1)))))
            pose = self.decpose(xc) + pose
            shape = self.decshape(xc) + shape
            cam = self.deccam(xc) + cam
        return rot6d_to_rotmat(pose).reshape(batch, 24, 3, 3), shape, cam


def hmr(smpl_mean_params: str | Path | None = None, pretrained: bool = True) -> HMR:
    """Build the HMR baseline with the SPIN mean parameters (the body model's when the path is absent)."""
    path = Path(smpl_mean_params) if smpl_mean_params else None
    if path is None or not path.is_file():
        path = path_config.body_model_paths().smpl_mean_params
    return HMR(load_mean_params(path), pretrained=pretrained)
