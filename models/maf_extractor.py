"""Mesh-aligned feature extraction: sample a feature map at projected points, then shrink channels."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.smpl import cached_derivation
from utils.geometry import projection


def load_downsampling_matrix(path: str | Path) -> np.ndarray:
    """Dense (431, 6890) matrix D[1] @ D[0] from GraphCMR's ``mesh_downsampling.npz``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'mesh downsampling file {path} not found: fetch_data.sh downloads it '
                                '(GraphCMR data; see data/README.md)')
    data = np.load(path, allow_pickle=True, encoding='latin1')
    d0, d1 = data['D'][0], data['D'][1]
    return np.asarray((d1 @ d0).todense() if hasattr(d1 @ d0, 'todense') else d1 @ d0, dtype=np.float32)


class MAF_Extractor(nn.Module):  # noqa: N801 (the original's name)
    """Per-point MLP (1x1 Conv1d) with skip connections to the sampled feature.

    Args:
        filter_channels: e.g. [256, 128, 64, 5]: input channels, then each layer's output channels.
        dmap: (431, 6890) vertex downsampling matrix, or None for a zero buffer filled by a checkpoint.
        last_op: activation of the sampled output: 'relu' (the original's) or 'leaky_relu' (no dead
            outputs; for training from scratch at higher learning rates, where ReLU outputs tend to die).
    """

    def __init__(self, filter_channels: list[int], dmap: np.ndarray | None = None, last_op: str = 'relu'):
        super().__init__()
        self.filters = []
        in_ch = filter_channels[0]
        for i in range(len(filter_channels) - 1):
            conv = nn.Conv1d(filter_channels[i] + (in_ch if i > 0 else 0), filter_channels[i + 1], 1)
            self.add_module(f'conv{i}', conv)
            self.filters.append(conv)
        if last_op not in ('relu', 'leaky_relu'):
            raise ValueError(f"MAF last_op must be 'relu' or 'leaky_relu', got {last_op!r}")
        self.last_op = nn.ReLU(True) if last_op == 'relu' else nn.LeakyReLU(inplace=True)
        self.register_buffer('Dmap', torch.zeros(431, 6890) if dmap is None else torch.from_numpy(dmap))
        self.im_feat = None
        self.cam = None

    def _dmap_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Dmap`` as (431, K) column indices and weights of each row's non-zeros (zero-padded).

        The matrix has one or a few non-zeros per row; computed on first use and again whenever the
        ``Dmap`` buffer is replaced or overwritten (a checkpoint load), the buffer itself untouched.
        """
        def compute():
            nonzero = self.Dmap != 0
            width = max(int(nonzero.sum(dim=1).max()), 1) if self.Dmap.numel() else 1
            # Stable sort puts each row's non-zero columns first, in column order.
            cols = torch.sort(nonzero.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :width]
            return cols, self.Dmap.gather(1, cols)
        return cached_derivation(self, '_dmap_rows_cache', (self.Dmap,), compute)

    def downsample(self, vertices: torch.Tensor) -> torch.Tensor:
        """``Dmap @ vertices``: (B, 6890, 3) -> (B, 431, 3), from the non-zeros only."""
        cols, weights = self._dmap_rows()
        gathered = vertices.index_select(1, cols.reshape(-1)).reshape(vertices.shape[0], *cols.shape, -1)
        return (gathered * weights.to(vertices.dtype).unsqueeze(-1)).sum(dim=2)

    def reduce_dim(self, feature: torch.Tensor,
                   pointwise: Callable[[nn.Conv1d, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """(B, C, N) sampled features -> (B, C_out * N), flattened channel-major (index c * N + n).

        ``pointwise(conv, x)``, when given, computes each 1x1 convolution ``conv(x)`` another way with the same
        weights (the lean inference forward uses a batched matrix product, faster than Conv1d here).
        """
        y = feature
        for i, conv in enumerate(self.filters):
            x = y if i == 0 else torch.cat([y, feature], dim=1)
            y = conv(x) if pointwise is None else pointwise(conv, x)
            if i != len(self.filters) - 1:
                y = F.leaky_relu(y)
        return self.last_op(y).reshape(y.shape[0], -1)

    def sampling(self, points: torch.Tensor) -> torch.Tensor:
        """Sample ``im_feat`` at normalised points (B, N, 2) in [-1, 1] -> (B, C_out * N)."""
        feat = F.grid_sample(self.im_feat, points.unsqueeze(2), align_corners=True)[..., 0]
        return self.reduce_dim(feat)

    def forward(self, points_3d: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Project (B, N, 3) points with the crop camera (B, 3) and sample the features there."""
        return self.sampling(projection(points_3d, cam))
