"""PyMAF's forward pass for inference only: the same final estimate as the network, with less work.

`LeanPyMAF` wraps a loaded PyMAF network (eval mode, no autograd) and computes the final feedback step's
output the way ``model(images, iuv=False)`` does, except that:

- batch norms are folded into the convolution or deconvolution before them (ResNet backbones): one pass
  over each feature map instead of two; ReLUs run in place;
- the feature maps may be computed in bfloat16 with channels-last tensors (``feature_dtype``), the
  precision the CPU's or GPU's bf16 units take natively, while the mesh-alignment extractors, the
  regressors and the body model stay in fp32: only the convolutional features carry bf16 rounding;
- on the CPU, the ResNet backbone and the deconvolutions may run as oneDNN calls with weights packed once and
  ReLUs and residual additions fused (``packed``, `core.inference.onednn`); the extractors' 1x1 convolutions
  run as batched matrix products;
- the intermediate feedback steps pose only the vertices that the next step's mesh downsampling reads
  (431 of 6890 with PyMAF's downsampling matrix), and skip their joints, 2D projections and axis-angle
  poses, which nothing reads; the mean-parameter start needs no body model at all. The last step runs
  the full body model, so every output field is there.

In fp32 the outputs equal the network's to float rounding (about 1e-6; tests check 1e-4). The wrapper
shares the network's extractors, regressors and body model; only the (folded) feature layers are copies.
Its ``forward`` keeps the network's output contract (``({'smpl_out': [final]}, [])``), so the inference
backends and the ONNX export take it in place of the network.
"""
from __future__ import annotations

import copy
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.inference import onednn
from models.pose_resnet import BasicBlock, Bottleneck, PoseResNet
from models.pymaf_net import PyMAF, ief_step
from utils.geometry import projection, rot6d_to_rotmat

logger = logging.getLogger(__name__)


def fold_batch_norm(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` (applied right after ``conv``) into ``conv``'s weight and bias, in place.

    ``bn(conv(x)) = conv'(x)`` with the weight scaled per output channel by ``gamma / sqrt(var + eps)`` and
    the bias ``(b - mean) * scale + beta``; computed in float64, stored in the weight's dtype.
    """
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.detach().double() - bn.running_mean.double() * scale
    weight = conv.weight.detach().double()
    # Output channels are dim 0 of a convolution's weight, dim 1 of a transposed convolution's.
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1] * weight.ndim
    shape[out_dim] = -1
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(shift)
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter((weight * scale.reshape(shape)).to(dtype), requires_grad=False)
    conv.bias = nn.Parameter((bias * scale + shift).to(dtype), requires_grad=False)


def _fold_resnet(backbone: PoseResNet) -> PoseResNet:
    """``backbone`` with every batch norm folded into its convolution (replaced by an identity), in place."""
    fold_batch_norm(backbone.conv1, backbone.bn1)
    backbone.bn1 = nn.Identity()
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in stage:
            for index in (1, 2, 3):
                if hasattr(block, f'bn{index}'):
                    fold_batch_norm(getattr(block, f'conv{index}'), getattr(block, f'bn{index}'))
                    setattr(block, f'bn{index}', nn.Identity())
            if block.downsample is not None:
                fold_batch_norm(block.downsample[0], block.downsample[1])
                block.downsample[1] = nn.Identity()
    return backbone


def _pointwise_product(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv1d of (B, C, N) points as one batched matrix product: the same sums, 2-6x faster than
    Conv1d's oneDNN path for the extractors' shapes on the project's CPU."""
    weight = conv.weight[:, :, 0].expand(x.shape[0], -1, -1)
    return torch.baddbmm(conv.bias[None, :, None], weight, x)


def supports(model: nn.Module) -> bool:
    """Whether `LeanPyMAF` can wrap ``model``: a PyMAF network with at least one feedback step (others, such
    as HMR or test doubles, run as they are)."""
    if not isinstance(model, PyMAF) or model.n_iter < 1:
        return False
    if model.is_resnet:
        return all(isinstance(block, BasicBlock | Bottleneck) for stage in (
            model.feature_extractor.layer1, model.feature_extractor.layer2, model.feature_extractor.layer3,
            model.feature_extractor.layer4) for block in stage)
    return True


class LeanPyMAF(nn.Module):
    """The final estimate of a PyMAF network with less work (module docstring).

    Args:
        model: a PyMAF network (`supports`), weights loaded; it is not modified.
        feature_dtype: dtype of the feature maps: torch.float32, or torch.bfloat16 where the device computes
            it natively (`utils.precision.native_bf16`).
        channels_last: compute the feature maps in channels-last memory format (faster for bf16 on CPUs).
        packed: run a ResNet backbone and the deconvolutions as packed oneDNN calls (`core.inference.onednn`;
            CPU only, channels-last; not for export). Where this torch cannot, the eager modules run, with a note.
    """

    def __init__(self, model: PyMAF, feature_dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 packed: bool = False):
        super().__init__()
        if not supports(model):
            raise ValueError(f'LeanPyMAF needs a PyMAF network with N_ITER >= 1, got {type(model).__name__}')
        self.model = model
        self.feature_dtype = feature_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        features = copy.deepcopy(model.feature_extractor).eval()
        if model.is_resnet:
            _fold_resnet(features)
            self.stages = nn.ModuleList(self._folded_deconv_stages(model))
        else:
            self.stages = nn.ModuleList()
        self.features = features
        for module in (self.features, self.stages):
            module.to(feature_dtype).to(memory_format=self.memory_format).requires_grad_(False)
        self._packed = None
        if packed and model.is_resnet:
            if not channels_last or next(self.features.parameters()).device.type != 'cpu':
                raise ValueError('packed oneDNN convolutions need channels_last=True and a network on the CPU')
            try:
                self._packed = onednn.PackedFeatures(self.features, self.stages)
            except RuntimeError as err:
                logger.info('%s: running eager convolutions', err)
        extractor = model.maf_extractor[0]
        cols, weights = extractor._dmap_rows()
        ids, inverse = torch.unique(cols.reshape(-1), return_inverse=True)
        # Downsampled vertex r = sum_k weights[r, k] * posed vertex ids[index[r, k]].
        self.register_buffer('ds_index', inverse.reshape(cols.shape), persistent=False)
        self.register_buffer('ds_weights', weights.clone(), persistent=False)
        smpl = model.regressor[0].smpl
        for name, array in zip(('sub_template', 'sub_shapedirs', 'sub_posedirs', 'sub_weights'),
                               smpl.vertex_subset(ids)):
            self.register_buffer(name, array, persistent=False)

    @staticmethod
    def _folded_deconv_stages(model: PyMAF) -> list[nn.Sequential]:
        """Copies of the deconvolution layers, batch norms folded, split where each feedback step reads a map."""
        layers = copy.deepcopy(model.deconv_layers)
        stages, start = [], 0
        for end in model._deconv_stage_ends:
            kept = []
            for deconv, bn, relu in zip(*[iter(layers[start:end])] * 3):
                fold_batch_norm(deconv, bn)
                kept += [deconv, relu]
            stages.append(nn.Sequential(*kept))
            start = end
        return stages

    def _maps(self, images: torch.Tensor):
        """The N_ITER feature maps the feedback steps sample, coarse to fine, in fp32."""
        x = images.to(self.feature_dtype).contiguous(memory_format=self.memory_format)
        if not self.model.is_resnet:
            _, _, pyramid = self.features(x)
            for fmap in pyramid[len(pyramid) - self.model.n_iter:]:
                yield fmap.float()
            return
        if self._packed is not None:
            feat = self._packed.backbone(x)
            for index in range(len(self.stages)):
                feat = self._packed.stage(index, feat)
                yield feat.float()
            return
        feat, _ = self.features(x)
        for stage in self.stages:
            feat = stage(feat)
            yield feat.float()

    def _downsampled_vertices(self, pose_6d: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """The mesh-downsampled vertices (B, 431, 3) of an estimate, posing only the vertices they read."""
        rotmat = rot6d_to_rotmat(pose_6d).reshape(pose_6d.shape[0], 24, 3, 3)
        subset = (self.sub_template, self.sub_shapedirs, self.sub_posedirs, self.sub_weights)
        vertices, _ = self.model.regressor[0].smpl.pose_vertex_subset(betas, rotmat, subset)
        gathered = vertices[:, self.ds_index]  # (B, 431, K, 3)
        return (gathered * self.ds_weights.unsqueeze(-1)).sum(dim=2)

    def forward(self, images: torch.Tensor, iuv: bool = False) -> tuple[dict, list]:
        """Final estimate of (B, 3, 224, 224) ImageNet-normalised crops.

        Returns:
            ``({'smpl_out': [final], 'dp_out': []}, [])`` with ``final`` the dict of
            `models.pymaf_net.Regressor.smpl_output` (``theta``, ``verts``, ``kp_2d``, ``kp_3d``, ``rotmat``, ...).
            ``iuv`` is accepted for the network's signature; the IUV head never runs.
        """
        del iuv
        model = self.model
        batch = images.shape[0]
        first = model.regressor[0]
        pose = first.init_pose.expand(batch, -1)
        shape = first.init_shape.expand(batch, -1)
        cam = first.init_cam.expand(batch, -1)
        last = model.n_iter - 1
        for i, fmap in enumerate(self._maps(images)):
            if i == 0:
                points = model.points_grid.expand(batch, -1, -1).transpose(1, 2)
            else:
                points = projection(self._downsampled_vertices(pose, shape), cam)
            sampled = F.grid_sample(fmap, points.unsqueeze(2), align_corners=True)[..., 0]
            features = model.maf_extractor[i].reduce_dim(sampled, pointwise=_pointwise_product)
            pose, shape, cam = ief_step(model.regressor[i], features, pose, shape, cam)
            if i == last:
                final = model.regressor[i].smpl_output(pose, shape, cam)
        return {'smpl_out': [final], 'dp_out': []}, []
