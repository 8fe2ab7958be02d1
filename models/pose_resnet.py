"""ResNet backbones in the original's "global mode": conv stages and an average pool, no head.

ResNet-50 is the paper's backbone; module names match the released checkpoint's ``feature_extractor.*``
keys (torchvision's ResNet names). ResNet-18, optionally narrower (``width`` < 64), is a light option for
CPU training (the project's built-in demo weights use it).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)
_warned_missing = False


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3 with stride, 1x1; 4x expansion)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as the original: no new block-sized tensor per residual
        return self.relu(out)


def init_backbone_weights(backbone: nn.Module) -> None:
    """He-initialise every convolution (fan-out, as torchvision's ResNets) and reset every batch norm.

    Backbones must also train from scratch when no ImageNet weights exist: a tiny normal init behind batch
    norm makes every Adam step rescale the filters, and training stalls.
    """
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions; no expansion), as in ResNet-18/34."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


# Backbone name -> (block, blocks per stage).
RESNETS = {'res50': (Bottleneck, (3, 4, 6, 3)), 'res18': (BasicBlock, (2, 2, 2, 2))}


class PoseResNet(nn.Module):
    """ResNet feature extractor (ResNet-50 by default).

    ``forward(x (B,3,224,224))`` returns ``(x4 (B,C,7,7), g_feat (B,C))`` with C = 2048 for ResNet-50 and
    8 * width for ResNet-18 (512 at the standard width 64).

    Args:
        layers: blocks per stage.
        block: `Bottleneck` or `BasicBlock`.
        width: channels of the stem and the first stage (64 standard; smaller for a light model).
    """

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), block: type[nn.Module] = Bottleneck,
                 width: int = 64):
        super().__init__()
        self.block = block
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AvgPool2d(7, stride=1)
        init_backbone_weights(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        block = self.block
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x4 = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x4, self.avgpool(x4).flatten(1)

    def load_imagenet(self, path: str | Path) -> bool:
        """Load torchvision ImageNet weights (``resnet50-19c8e357.pth``, ``resnet18-f37072fd.pth``) if the file exists.

        Returns whether weights were loaded; a missing file is reported once and is not an error
        (a PyMAF checkpoint overwrites these weights anyway).
        """
        global _warned_missing
        path = Path(path)
        if not path.is_file():
            if not _warned_missing:
                logger.warning('ImageNet weights %s not found: building the backbone without them '
                               '(fine with a PyMAF checkpoint; for training see data/README.md)', path)
                _warned_missing = True
            return False
        state = torch.load(path, map_location='cpu', weights_only=True)
        missing, _ = self.load_state_dict({k: v for k, v in state.items() if not k.startswith('fc.')}, strict=False)
        if missing:
            raise ValueError(f'{path} does not fit this ResNet: missing {missing[:5]}...')
        logger.info('loaded ImageNet weights from %s', path)
        return True
