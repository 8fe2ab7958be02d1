"""PyMAF: a feature pyramid (ResNet-50 or HRNet) and an iterative SMPL regressor fed by mesh-aligned features.

Zhang et al., "PyMAF: 3D Human Pose and Shape Regression with Pyramidal Mesh Alignment Feedback Loop",
ICCV 2021. Attribute names and registration order follow the original, so the released (ResNet-50)
checkpoint loads with ``strict=True``. With ``MODEL.PyMAF.BACKBONE`` 'hr48' or 'hr32' the three maps the
feedback loop samples (256 channels at 14x14, 28x28, 56x56) come from HRNet's 1/16, 1/8 and 1/4 branches
(`models.hrnet.HRNetPyramid`) instead of the deconvolutions; the extractors, regressors and IUV head are
the same.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core import cfgs, constants, path_config
from models.hrnet import WIDTHS as HRNET_WIDTHS
from models.hrnet import HRNetPyramid
from models.iuv_predictor import IUV_predict_layer
from models.maf_extractor import MAF_Extractor, load_downsampling_matrix
from models.pose_resnet import RESNETS, PoseResNet
from models.smpl import SMPL, cached_derivation
from utils.geometry import projection, rot6d_to_rotmat, rotation_matrix_to_angle_axis

logger = logging.getLogger(__name__)

NUM_POSE_6D = 24 * 6
NUM_BETAS = 10
GRID_SIZE = 21
BACKBONES = tuple(RESNETS) + tuple(HRNET_WIDTHS)


def load_mean_params(path: str | Path) -> dict[str, torch.Tensor]:
    """SPIN mean parameters: ``pose`` (1,144) 6D, ``shape`` (1,10), ``cam`` (1,3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'SMPL mean parameters {path} not found: they come with the SPIN data '
                                '(fetch_data.sh; see data/README.md)')
    data = np.load(path)
    return {key: torch.from_numpy(np.asarray(data[key], np.float32)).unsqueeze(0) for key in ('pose', 'shape', 'cam')}


def add_ief_layers(module: nn.Module, feat_dim: int, hidden_dim: int = 1024) -> None:
    """Give ``module`` the HMR/SPIN error-feedback layers (fc1, drop1, fc2, drop2, decpose/shape/cam).

    Attribute names are the checkpoint's; there is no nonlinearity between the fc layers, as the original.
    ``hidden_dim`` is the width of fc1/fc2 (1024 in the original).
    """
    module.fc1 = nn.Linear(feat_dim + NUM_POSE_6D + NUM_BETAS + 3, hidden_dim)
    module.drop1 = nn.Dropout()
    module.fc2 = nn.Linear(hidden_dim, hidden_dim)
    module.drop2 = nn.Dropout()
    module.decpose = nn.Linear(hidden_dim, NUM_POSE_6D)
    module.decshape = nn.Linear(hidden_dim, NUM_BETAS)
    module.deccam = nn.Linear(hidden_dim, 3)
    for layer in (module.decpose, module.decshape, module.deccam):
        nn.init.xavier_uniform_(layer.weight, gain=0.01)


def ief_step(module: nn.Module, x: torch.Tensor, pose_6d: torch.Tensor, shape: torch.Tensor, cam: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One error-feedback update of (pose_6d (B,144), shape (B,10), cam (B,3)) from features x (B,D)."""
    xc = module.drop2(module.fc2(module.drop1(module.fc1(torch.cat([x, pose_6d, shape, cam], dim=1)))))
    return module.decpose(xc) + pose_6d, module.decshape(xc) + shape, module.deccam(xc) + cam


class Regressor(nn.Module):
    """One feedback step: features + current estimate -> residual update of pose (6D), shape, camera."""

    def __init__(self, feat_dim: int, smpl_dir: str | Path | None, mean_params: dict[str, torch.Tensor] | None,
                 joint_regressor_extra: str | Path | None = None, hidden_dim: int = 1024,
                 smpl: nn.Module | None = None):
        """``smpl``: a body model to share with other regressors (else one is built from ``smpl_dir``)."""
        super().__init__()
        if mean_params is None:
            mean_params = {'pose': torch.zeros(1, NUM_POSE_6D), 'shape': torch.zeros(1, NUM_BETAS),
                           'cam': torch.zeros(1, 3)}
        self.register_buffer('init_pose', mean_params['pose'].clone())
        self.register_buffer('init_shape', mean_params['shape'].clone())
        self.register_buffer('init_cam', mean_params['cam'].clone())
        add_ief_layers(self, feat_dim, hidden_dim)
        self.smpl = smpl if smpl is not None else SMPL(smpl_dir, batch_size=64, create_transl=False,
                                                       joint_regressor_extra=joint_regressor_extra)

    def forward(self, x: torch.Tensor, init_pose: torch.Tensor | None = None, init_shape: torch.Tensor | None = None,
                init_cam: torch.Tensor | None = None, n_iter: int = 1,
                J_regressor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # noqa: N803
        """Refine the estimate ``n_iter`` times from features x (B, feat_dim); see `smpl_output`."""
        batch = x.shape[0]
        pred_pose = self.init_pose.expand(batch, -1) if init_pose is None else init_pose
        pred_shape = self.init_shape.expand(batch, -1) if init_shape is None else init_shape
        pred_cam = self.init_cam.expand(batch, -1) if init_cam is None else init_cam
        for _ in range(n_iter):
            pred_pose, pred_shape, pred_cam = ief_step(self, x, pred_pose, pred_shape, pred_cam)
        return self.smpl_output(pred_pose, pred_shape, pred_cam, J_regressor)

    def forward_init(self, x: torch.Tensor, J_regressor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # noqa: N803
        """The mean-parameter estimate (x is used only for its batch size, as in the original).

        It depends on no input, so in eval mode without autograd the batch-1 result is cached and
        copied out per call (fresh tensors: callers may modify them); the cache is recomputed when a
        buffer (mean parameters, body model) or ``J_regressor`` changes. Train mode or enabled
        autograd always computes it.
        """
        batch = x.shape[0]
        if self.training or torch.is_grad_enabled():
            return self._mean_output(batch, J_regressor)
        sources = tuple(self.buffers()) + (() if J_regressor is None else (J_regressor,))
        single = cached_derivation(self, '_mean_output_cache', sources, lambda: self._mean_output(1, J_regressor))
        return {key: value.expand(batch, *value.shape[1:]).clone() for key, value in single.items()}

    def _mean_output(self, batch: int, J_regressor: torch.Tensor | None) -> dict[str, torch.Tensor]:  # noqa: N803
        return self.smpl_output(self.init_pose.expand(batch, -1).contiguous(),
                                self.init_shape.expand(batch, -1).contiguous(),
                                self.init_cam.expand(batch, -1).contiguous(), J_regressor)

    def smpl_output(self, pred_pose: torch.Tensor, pred_shape: torch.Tensor, pred_cam: torch.Tensor,
                    J_regressor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # noqa: N803
        """Run SMPL on a 6D pose (B,144), betas (B,10) and crop camera (B,3).

        Returns the original's dict: ``theta`` (B,85) = [cam, betas, pose_aa (72)], ``verts``
        (B,6890,3), ``kp_2d`` (B,49,2) normalised crop coordinates, ``kp_3d`` (B,49,3), or (B,14,3)
        pelvis-centred H36M-regressor joints when ``J_regressor`` (17,6890) is given, ``smpl_kp_3d``
        (B,24,3), ``rotmat`` (B,24,3,3), ``pred_cam``, ``pred_shape``, ``pred_pose``.
        """
        rotmat = rot6d_to_rotmat(pred_pose).reshape(pred_pose.shape[0], 24, 3, 3)
        return dict(smpl_outputs(self.smpl, rotmat, pred_shape, pred_cam, J_regressor), pred_pose=pred_pose)


def smpl_outputs(smpl: nn.Module, rotmat: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor,
                 J_regressor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # noqa: N803
    """One prediction's output dict from rotation matrices (B,24,3,3), betas (B,10) and crop camera (B,3).

    The keys of `Regressor.smpl_output` except ``pred_pose`` (also used for the HMR baseline, which predicts
    rotation matrices).
    """
    batch = rotmat.shape[0]
    out = smpl(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1], pose2rot=False)
    verts, joints = out.vertices, out.joints
    kp_2d = projection(joints, cam)
    pose_aa = rotation_matrix_to_angle_axis(rotmat.reshape(-1, 3, 3)).reshape(batch, 72)
    if J_regressor is not None:
        h36m = torch.matmul(J_regressor.to(verts), verts)
        joints = h36m[:, constants.H36M_TO_J14] - h36m[:, :1]
    return {
        'theta': torch.cat([cam, betas, pose_aa], dim=1),
        'verts': verts,
        'kp_2d': kp_2d,
        'kp_3d': joints,
        'smpl_kp_3d': out.smpl_joints,
        'rotmat': rotmat,
        'pred_cam': cam,
        'pred_shape': betas,
    }


class PyMAF(nn.Module):
    """The PyMAF network (ResNet-50 backbone, or HRNet-W48/W32 by ``MODEL.PyMAF.BACKBONE``).

    Args:
        body_paths: the body-model files (`core.path_config.BodyModelPaths`), or None to build
            zero-filled body buffers that a checkpoint must fill (the released checkpoint holds them).
        mean_params_path: SPIN mean parameters; defaults to ``body_paths.smpl_mean_params``.
        pretrained: load ImageNet weights into the backbone when the file exists.
        model_cfg: the ``MODEL.PyMAF`` config node; None: the released configuration's
            (configs/pymaf_config.yaml).
        res_cfg: the ``RES_MODEL`` config node (deconvolution head); None: the released configuration's.
    """

    def __init__(self, body_paths: path_config.BodyModelPaths | None, mean_params_path: str | Path | None = None,
                 pretrained: bool = True, model_cfg=None, res_cfg=None):
        super().__init__()
        if model_cfg is None or res_cfg is None:
            released = cfgs.load_cfg()
            model_cfg = model_cfg if model_cfg is not None else released.MODEL.PyMAF
            res_cfg = res_cfg if res_cfg is not None else released.RES_MODEL
        if model_cfg.BACKBONE not in BACKBONES:
            raise ValueError(f'MODEL.PyMAF.BACKBONE {model_cfg.BACKBONE!r} is not supported; '
                             f'choose one of {", ".join(BACKBONES)}')
        if not 0 <= model_cfg.N_ITER <= 3:
            raise ValueError(f'MODEL.PyMAF.N_ITER must be in 0..3, got {model_cfg.N_ITER}')
        self.n_iter = model_cfg.N_ITER
        self.aux_supv_on = model_cfg.AUX_SUPV_ON
        self.backbone_name = model_cfg.BACKBONE
        self.is_resnet = self.backbone_name in RESNETS
        if self.is_resnet:
            block, layers = RESNETS[self.backbone_name]
            self.feature_extractor = PoseResNet(layers, block, width=model_cfg.BACKBONE_WIDTH)
            imagenet_path = {'res50': path_config.RESNET50_IMAGENET, 'res18': path_config.RESNET18_IMAGENET}[
                self.backbone_name]
            if model_cfg.BACKBONE_WIDTH != 64:
                pretrained = False  # no ImageNet weights exist for a narrowed ResNet
        else:
            self.feature_extractor = HRNetPyramid(HRNET_WIDTHS[self.backbone_name], res_cfg.NUM_DECONV_FILTERS[-1])
            imagenet_path = path_config.HRNET_IMAGENET[self.backbone_name]
        if pretrained:
            self.feature_extractor.load_imagenet(imagenet_path)
        lin = torch.linspace(-1, 1, GRID_SIZE)
        grid_x, grid_y = torch.meshgrid(lin, lin, indexing='ij')
        # (1, 2, 441): point k = (x = lin[k // 21], y = lin[k % 21]); y varies fastest, as the original.
        self.register_buffer('points_grid', torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)]).unsqueeze(0))
        if self.is_resnet:
            self.inplanes = self.feature_extractor.inplanes
            self.deconv_with_bias = res_cfg.DECONV_WITH_BIAS
            self.deconv_layers = self._make_deconv_layer(res_cfg.NUM_DECONV_LAYERS, res_cfg.NUM_DECONV_FILTERS,
                                                         res_cfg.NUM_DECONV_KERNELS)
            # Where each feedback stage's map comes out of deconv_layers (module counts), as the original
            # splits it: three stages for N_ITER=3, the first two merged for N_ITER=2, all for N_ITER=1.
            n_layers = len(self.deconv_layers)
            self._deconv_stage_ends = {3: (3, 6, 9), 2: (6, 9), 1: (n_layers,), 0: ()}[self.n_iter]

        if body_paths is None:
            smpl_dir = dmap = mean_params = extra = None
        else:
            smpl_dir, extra = body_paths.smpl_dir, body_paths.joint_regressor_extra
            dmap = load_downsampling_matrix(body_paths.mesh_downsampling)
            mean_params = load_mean_params(mean_params_path or body_paths.smpl_mean_params)
        mlp_dim = list(model_cfg.MLP_DIM)
        self.maf_extractor = nn.ModuleList([MAF_Extractor(mlp_dim, dmap, model_cfg.MAF_LAST_OP)
                                            for _ in range(self.n_iter)])
        n_points = [GRID_SIZE * GRID_SIZE] + [431] * max(self.n_iter - 1, 0)
        # The regressors share one body model and the extractors one downsampling matrix: the state_dict keeps
        # the released layout (a copy under every regressor's and extractor's name), but the tensors are one,
        # in memory and in the files torch.save writes (about 60 MB less per checkpoint).
        self.regressor = nn.ModuleList()
        for i in range(max(self.n_iter, 1)):
            self.regressor.append(Regressor(n_points[i] * mlp_dim[-1], smpl_dir, mean_params, extra,
                                            model_cfg.HIDDEN_DIM, smpl=self.regressor[0].smpl if i else None))
        self._tie_downsampling()
        if self.aux_supv_on:
            self.dp_head = IUV_predict_layer(feat_dim=res_cfg.NUM_DECONV_FILTERS[-1])

    def _tie_downsampling(self) -> None:
        """Point every extractor's ``Dmap`` at the first one's tensor."""
        for extractor in self.maf_extractor[1:]:
            extractor.Dmap = self.maf_extractor[0].Dmap

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.half()`` and the like convert each module's buffers separately: re-tie ``Dmap`` after."""
        super()._apply(fn, recurse)
        self._tie_downsampling()
        return self

    def _make_deconv_layer(self, num_layers: int, num_filters: list[int], num_kernels: list[int]) -> nn.Sequential:
        layers = []
        for i in range(num_layers):
            kernel = num_kernels[i]
            padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel]
            layers += [nn.ConvTranspose2d(self.inplanes, num_filters[i], kernel, stride=2, padding=padding,
                                          output_padding=output_padding, bias=self.deconv_with_bias),
                       nn.BatchNorm2d(num_filters[i], momentum=0.1),
                       nn.ReLU(inplace=True)]
            self.inplanes = num_filters[i]
        return nn.Sequential(*layers)

    def _feature_pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Iterator[torch.Tensor]]:
        """``(top map, g_feat, maps)``: maps yields the N_ITER maps the loop samples, coarse to fine."""
        if not self.is_resnet:
            top, g_feat, pyramid = self.feature_extractor(x)
            return top, g_feat, iter(pyramid[len(pyramid) - self.n_iter:])

        s_feat, g_feat = self.feature_extractor(x)

        def deconvolved():
            layers = list(self.deconv_layers)
            feat, start = s_feat, 0
            for end in self._deconv_stage_ends:
                for layer in layers[start:end]:
                    feat = layer(feat)
                start = end
                yield feat
        return s_feat, g_feat, deconvolved()

    def forward(self, x: torch.Tensor, J_regressor: torch.Tensor | None = None, iuv: bool = True):  # noqa: N803
        """Regress SMPL from crops.

        Args:
            x: (B, 3, 224, 224) ImageNet-normalised RGB crops.
            J_regressor: optional (17, 6890) H36M regressor; then ``kp_3d`` holds (B, 14, 3) joints.
            iuv: run the auxiliary IUV head (when AUX_SUPV_ON), as the original does in train and eval
                mode. Inference that never reads ``dp_out`` (evaluation, the demo) passes False and saves
                its 3x3 convolution over the 56x56 map, about 6 % of the forward pass; the SMPL outputs
                are the same either way.

        Returns:
            ``(preds_dict, vis_feats)``: ``preds_dict['smpl_out']`` is a list of N_ITER + 1 output dicts
            (the mean-parameter start, then each feedback step; the last is the prediction),
            ``preds_dict['dp_out']`` a list with the IUV head's outputs (56x56) when AUX_SUPV_ON and ``iuv``;
            ``vis_feats`` the detached feature maps [7x7, 14x14, 28x28, 56x56] (the 7x7 one is
            ResNet-50's layer4 or HRNet's 1/32 branch).
        """
        batch = x.shape[0]
        s_feat, g_feat, maps = self._feature_pyramid(x)
        smpl_out = [self.regressor[0].forward_init(g_feat, J_regressor=J_regressor)]
        vis_feats = [s_feat.detach()]
        dp_out = []
        for i, s_feat in enumerate(maps):
            prev = smpl_out[-1]
            pred_cam = prev['pred_cam'].detach()
            pred_shape = prev['pred_shape'].detach()
            pred_pose = prev['pred_pose'].detach()
            vis_feats.append(s_feat.detach())
            extractor = self.maf_extractor[i]
            extractor.im_feat = s_feat
            extractor.cam = pred_cam
            if i == 0:
                points = self.points_grid.expand(batch, -1, -1).transpose(1, 2)
                feat = extractor.sampling(points)
            else:
                verts_ds = extractor.downsample(prev['verts'].detach())
                feat = extractor(verts_ds, pred_cam)
            smpl_out.append(self.regressor[i](feat, pred_pose, pred_shape, pred_cam, n_iter=1,
                                              J_regressor=J_regressor))
        if self.aux_supv_on and iuv:
            dp_out.append(self.dp_head(s_feat))
        return {'smpl_out': smpl_out, 'dp_out': dp_out}, vis_feats


def without_iuv(model: nn.Module) -> dict[str, bool]:
    """Keyword arguments that make ``model(images, **kwargs)`` skip the IUV head: ``{'iuv': False}`` for PyMAF,
    nothing for other networks with its output contract (test doubles, user models), which take images alone."""
    return {'iuv': False} if 'iuv' in inspect.signature(model.forward).parameters else {}


def pymaf_net(smpl_mean_params: str | Path | None = None, pretrained: bool = True,
              body_paths: path_config.BodyModelPaths | None = None, placeholder_body: bool = False,
              cfg=None) -> PyMAF:
    """Build PyMAF as configured in ``cfg``.

    Args:
        smpl_mean_params: mean-parameter file; the default path falls back to the body model's
            (stand-in or official) when absent.
        pretrained: load ImageNet backbone weights if the file exists.
        body_paths: body-model files (default `core.path_config.body_model_paths()`).
        placeholder_body: build zero-filled SMPL, downsampling and mean-parameter buffers, for loading a
            checkpoint that carries them (the released PyMAF checkpoint does).
        cfg: the full config node (`core.cfgs.load_cfg`); None: the released configuration.
    """
    model_cfg, res_cfg = (cfg.MODEL.PyMAF, cfg.RES_MODEL) if cfg is not None else (None, None)
    if placeholder_body:
        return PyMAF(None, pretrained=pretrained, model_cfg=model_cfg, res_cfg=res_cfg)
    body_paths = body_paths or path_config.body_model_paths()
    mean_params = None
    if smpl_mean_params is not None and Path(smpl_mean_params).is_file():
        mean_params = smpl_mean_params
    elif smpl_mean_params is not None and Path(smpl_mean_params) != path_config.SMPL_MEAN_PARAMS:
        raise FileNotFoundError(f'SMPL mean parameters {smpl_mean_params} not found')
    return PyMAF(body_paths, mean_params, pretrained=pretrained, model_cfg=model_cfg, res_cfg=res_cfg)
