"""The auxiliary DensePose head: IUV maps predicted from the last 56x56 feature map."""
from __future__ import annotations

import torch
import torch.nn as nn

NUM_PARTS = 24          # DensePose surface parts; index maps have a background channel too
NUM_ANN_PARTS = 14      # coarse body parts of the 15-channel "Ann" map (plus background)


class IUV_predict_layer(nn.Module):  # noqa: N801 (the original's name; checkpoint keys depend on it)
    """Four 3x3 convolutions: U, V (per part), coarse part index and fine part index logits.

    ``forward(x (B,C,H,W))`` returns ``{'predict_u','predict_v'}`` (B,25,H,W),
    ``'predict_ann_index'`` (B,15,H,W) and ``'predict_uv_index'`` (B,25,H,W).
    """

    def __init__(self, feat_dim: int = 256):
        super().__init__()
        self.predict_u = nn.Conv2d(feat_dim, NUM_PARTS + 1, kernel_size=3, padding=1)
        self.predict_v = nn.Conv2d(feat_dim, NUM_PARTS + 1, kernel_size=3, padding=1)
        self.predict_ann_index = nn.Conv2d(feat_dim, NUM_ANN_PARTS + 1, kernel_size=3, padding=1)
        self.predict_uv_index = nn.Conv2d(feat_dim, NUM_PARTS + 1, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            'predict_uv_index': self.predict_uv_index(x),
            'predict_ann_index': self.predict_ann_index(x),
            'predict_u': self.predict_u(x),
            'predict_v': self.predict_v(x),
        }
