"""The ResNet backbone and deconvolutions of the lean forward run by oneDNN with weights packed once, on the CPU.

PyTorch's eager convolutions hand oneDNN plain weight tensors, which it reorders into its blocked layout on
every call, and run batch-norm-free ReLUs and residual additions as separate passes over the feature maps.
Here each convolution's weight is reordered once (for the input's channels and size; any batch size reuses
it) and the ReLU, or the residual addition and its ReLU, run inside the convolution as oneDNN post-operations,
through the operators torch's compiler uses for the same purpose (``torch.ops.mkldnn._convolution_pointwise``
and ``_convolution_transpose_pointwise``). The arithmetic is the eager convolutions': outputs equal them to
float rounding. Measured on the project's CPU in bf16, the backbone and deconvolutions ran 1.4x faster than
eager at batch 1 and 1.1x at batch 32 (docs/speed.md).

`available` says whether this torch has the operators and oneDNN; `PackedFeatures` raises if a self-check of
its first convolution against eager fails, and the caller then keeps the eager modules.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.pose_resnet import PoseResNet


def available() -> bool:
    """Whether torch has oneDNN and the packed-convolution operators used here."""
    ops = getattr(torch.ops, 'mkldnn', None)
    names = ('_convolution_pointwise', '_reorder_convolution_weight', '_convolution_transpose_pointwise',
             '_reorder_convolution_transpose_weight')
    return torch.backends.mkldnn.is_available() and ops is not None and all(hasattr(ops, n) for n in names)


class _Packed:
    """One (transposed) convolution with a bias (the folded batch norm), its weight packed on first use for the
    input's channels and size."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.weight = conv.weight.detach()
        self.bias = None if conv.bias is None else conv.bias.detach()
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.output_padding = list(conv.output_padding) if self.transposed else None
        self._packs: dict[tuple[int, ...], torch.Tensor] = {}

    def _packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape[1:])
        packed = self._packs.get(key)
        if packed is None:  # two threads racing here both pack a valid weight; one is kept
            mkldnn = torch.ops.mkldnn
            if self.transposed:
                packed = mkldnn._reorder_convolution_transpose_weight(
                    self.weight, self.padding, self.output_padding, self.stride, self.dilation, self.groups,
                    list(x.shape))
            else:
                packed = mkldnn._reorder_convolution_weight(self.weight, self.padding, self.stride, self.dilation,
                                                            self.groups, list(x.shape))
            self._packs[key] = packed
        return packed

    def __call__(self, x: torch.Tensor, relu: bool = True, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``relu(conv(x) [+ residual])``, or ``conv(x)`` without ``relu`` (then no residual)."""
        mkldnn = torch.ops.mkldnn
        weight = self._packed_weight(x)
        if self.transposed:
            return mkldnn._convolution_transpose_pointwise(x, weight, self.bias, self.padding, self.output_padding,
                                                           self.stride, self.dilation, self.groups,
                                                           'relu' if relu else 'none', [None], '')
        if residual is not None:
            return mkldnn._convolution_pointwise.binary(x, residual, weight, self.bias, self.padding, self.stride,
                                                        self.dilation, self.groups, 'add', None, 'relu', [None], '')
        return mkldnn._convolution_pointwise(x, weight, self.bias, self.padding, self.stride, self.dilation,
                                             self.groups, 'relu' if relu else 'none', [None], '')


class PackedFeatures:
    """The folded ResNet backbone (`models.pose_resnet.PoseResNet` with its batch norms folded into the
    convolutions) and the folded deconvolution stages (ConvTranspose2d, ReLU, ...) as packed oneDNN calls.

    ``backbone(x)`` returns layer4's map (B, C, 7, 7) like the backbone's first output; ``stage(i, x)`` runs
    deconvolution stage i. Inputs are channels-last tensors in the modules' dtype; the modules are shared.

    Raises:
        RuntimeError: the operators are missing, or the first convolution differs from eager.
    """

    def __init__(self, backbone: PoseResNet, stages: nn.ModuleList):
        if not available():
            raise RuntimeError('this torch has no oneDNN packed convolutions')
        self.stem = _Packed(backbone.conv1)
        self.maxpool = backbone.maxpool
        self.blocks = []
        for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
            for block in stage:
                convs = [_Packed(getattr(block, f'conv{i}')) for i in (1, 2, 3) if hasattr(block, f'conv{i}')]
                down = None if block.downsample is None else _Packed(block.downsample[0])
                self.blocks.append((convs, down))
        self.stages = [[_Packed(layer) for layer in stage if isinstance(layer, nn.ConvTranspose2d)] for stage in stages]
        self._check(backbone.conv1)

    def _check(self, conv: nn.Conv2d) -> None:
        """The stem convolution packed against eager on a small input (a broken operator fails here)."""
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(conv.weight.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        probe = _Packed(conv)
        with torch.no_grad():
            expected = torch.relu(conv(x)).float()
            got = probe(x).float()
        scale = float(expected.abs().max()) or 1.0
        if got.shape != expected.shape or float((got - expected).abs().max()) > 2e-2 * scale:
            raise RuntimeError('oneDNN packed convolution disagrees with eager')

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x))
        for convs, down in self.blocks:
            identity = x if down is None else down(x, relu=False)
            out = x
            for conv in convs[:-1]:
                out = conv(out)
            x = convs[-1](out, residual=identity)
        return x

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        for deconv in self.stages[index]:
            x = deconv(x)
        return x
