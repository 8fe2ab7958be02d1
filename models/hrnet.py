"""HRNet backbone (Sun et al., "Deep High-Resolution Representation Learning for Human Pose Estimation", CVPR 2019).

Written from the paper's description: a stem of two stride-2 3x3 convolutions (1/4 resolution), then
four stages. Stage 1 is four bottleneck blocks at 1/4 resolution; each later stage adds a branch at half
the resolution of the previous lowest one (widths C, 2C, 4C, 8C at 1/4, 1/8, 1/16, 1/32) and is built of
repeated modules: four basic blocks per branch followed by a fuse layer where every branch receives the
sum of all branches (1x1 conv + BN + nearest upsampling from lower resolutions, strided 3x3 convs from
higher ones). Stages 2, 3 and 4 have 1, 4 and 3 modules. W32 and W48 are C = 32 and C = 48.

Module names follow the usual HRNet state_dict layout (``conv1``, ``layer1``, ``transition1``,
``stage2.0.branches.0.0.conv1`` ...), so ImageNet weights saved in that layout load with `load_imagenet`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.pose_resnet import Bottleneck, init_backbone_weights

logger = logging.getLogger(__name__)
_warned_missing: set[str] = set()

WIDTHS = {'hr32': 32, 'hr48': 48}
STAGE_MODULES = (1, 4, 3)   # modules in stages 2, 3, 4
BLOCKS_PER_BRANCH = 4


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions (channels unchanged)."""

    expansion = 1

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then a fuse layer exchanging information across resolutions.

    Args:
        channels: width of each branch, highest resolution first (branch i is at 1/2^i of branch 0).
        num_outputs: how many fused outputs to build (the highest-resolution ones); the other branches are
            returned unfused (their blocks' output), so a trunk can skip fuse layers nobody consumes.
    """

    def __init__(self, channels: list[int], num_outputs: int | None = None):
        super().__init__()
        n = len(channels)
        self.num_outputs = n if num_outputs is None else num_outputs
        self.branches = nn.ModuleList([nn.Sequential(*[BasicBlock(c) for _ in range(BLOCKS_PER_BRANCH)])
                                       for c in channels])
        fuse = []
        for i in range(self.num_outputs):
            row = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        step = [_conv3x3(channels[j], out_ch, stride=2), nn.BatchNorm2d(out_ch)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            total = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                y = layer(xs[j])
                if j > i:
                    y = F.interpolate(y, size=xs[i].shape[-2:], mode='nearest')
                total = total + y
            out.append(self.relu(total))
        return out + xs[self.num_outputs:]


class HRNet(nn.Module):
    """HRNet trunk (no classification head).

    ``forward(x (B,3,H,W))`` returns 4 maps ``[(B,C,H/4,W/4), (B,2C,H/8,W/8), (B,4C,H/16,W/16),
    (B,8C,H/32,W/32)]``. The last module fuses only the ``num_outputs`` highest-resolution branches; the
    lower ones are returned as their blocks' output.

    Args:
        width: C, 32 for HRNet-W32 or 48 for HRNet-W48.
        num_outputs: fused outputs of the final module (4: the full multi-resolution trunk).
    """

    def __init__(self, width: int = 48, num_outputs: int = 4):
        super().__init__()
        if not 1 <= num_outputs <= 4:
            raise ValueError(f'num_outputs must be in 1..4, got {num_outputs}')
        self.width = width
        self.channels = [width * 2 ** i for i in range(4)]
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = _conv3x3(64, 64, stride=2)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, downsample=downsample),
                                    *[Bottleneck(256, 64) for _ in range(3)])
        prev = [256]
        for stage, n_modules in enumerate(STAGE_MODULES, start=2):
            cur = self.channels[:stage]
            setattr(self, f'transition{stage - 1}', self._transition(prev, cur))
            modules = [HighResolutionModule(cur, num_outputs if stage == 4 and m == n_modules - 1 else None)
                       for m in range(n_modules)]
            setattr(self, f'stage{stage}', nn.Sequential(*modules))
            prev = cur
        init_backbone_weights(self)

    @staticmethod
    def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
        """Adapt existing branches' widths and create the new lowest-resolution branch."""
        layers = []
        for i, out_ch in enumerate(cur):
            if i < len(prev):
                layers.append(nn.Identity() if prev[i] == out_ch else nn.Sequential(
                    _conv3x3(prev[i], out_ch), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)))
            else:
                layers.append(nn.Sequential(nn.Sequential(
                    _conv3x3(prev[-1], out_ch, stride=2), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))))
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for stage in (2, 3, 4):
            transition = getattr(self, f'transition{stage - 1}')
            xs = [layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(transition)]
            xs = getattr(self, f'stage{stage}')(xs)
        return xs

    def load_imagenet(self, path: str | Path) -> bool:
        """Load ImageNet weights in the HRNet state_dict layout if the file exists.

        Classification-head keys (and fuse layers this trunk does not build) are ignored. Returns whether
        weights were loaded; a missing file is reported once and is not an error.
        """
        path = Path(path)
        if not path.is_file():
            if str(path) not in _warned_missing:
                logger.warning('HRNet-W%d ImageNet weights %s not found: building the backbone without them '
                               '(fine with a PyMAF checkpoint; for training see data/README.md)', self.width, path)
                _warned_missing.add(str(path))
            return False
        state = torch.load(path, map_location='cpu', weights_only=True)
        if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
            state = state['state_dict']
        state = {k.removeprefix('module.'): v for k, v in state.items()}
        own = self.state_dict()
        shapes_differ = [k for k in own if k in state and state[k].shape != own[k].shape]
        if shapes_differ:
            raise ValueError(f'{path} does not match HRNet-W{self.width}: shapes differ for {shapes_differ[:5]}; '
                             'is it the weights of another width?')
        missing, _ = self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        if missing:
            raise ValueError(f'{path} is not an HRNet-W{self.width} state_dict: missing {missing[:5]}...')
        logger.info('loaded HRNet-W%d ImageNet weights from %s', self.width, path)
        return True


class HRNetPyramid(nn.Module):
    """HRNet features shaped like the ResNet-50 deconvolution pyramid that PyMAF's feedback loop samples.

    The 1/16, 1/8 and 1/4 branches each go through a 1x1 conv + BN + ReLU to ``out_channels``.
    ``forward(x (B,3,224,224))`` returns ``(top (B,8C,7,7), g_feat (B,8C), [(B,256,14,14), (B,256,28,28),
    (B,256,56,56)])``: the 1/32 branch, its global average, and the maps coarse to fine.

    Args:
        width: 32 or 48.
        out_channels: channels of the pyramid maps (the MAF extractors' input width).
    """

    def __init__(self, width: int = 48, out_channels: int = 256):
        super().__init__()
        self.backbone = HRNet(width, num_outputs=3)
        self.neck = nn.ModuleList([nn.Sequential(nn.Conv2d(self.backbone.channels[i], out_channels, 1, bias=False),
                                                 nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
                                   for i in (2, 1, 0)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        xs = self.backbone(x)
        pyramid = [layer(xs[i]) for layer, i in zip(self.neck, (2, 1, 0))]
        return xs[3], xs[3].mean(dim=(2, 3)), pyramid

    def load_imagenet(self, path: str | Path) -> bool:
        """See `HRNet.load_imagenet`."""
        return self.backbone.load_imagenet(path)
