"""HRNet backbone option: W32 forward through the PyMAF feedback loop, gradients, W48 size, weight loading."""
import logging

import pytest
import torch

from core import cfgs, path_config
from models import hrnet
from models.hrnet import HRNet, HRNetPyramid
from models.pymaf_net import PyMAF
from tests.model_checks import layers_without_gradient

SMPL_SHAPES = {'theta': (1, 85), 'verts': (1, 6890, 3), 'kp_2d': (1, 49, 2), 'kp_3d': (1, 49, 3),
               'smpl_kp_3d': (1, 24, 3), 'rotmat': (1, 24, 3, 3), 'pred_cam': (1, 3), 'pred_shape': (1, 10),
               'pred_pose': (1, 144)}


def _build(backbone: str, n_iter: int = 3) -> PyMAF:
    node = cfgs.get_cfg_defaults()
    node.MODEL.PyMAF.BACKBONE = backbone
    node.MODEL.PyMAF.N_ITER = n_iter
    return PyMAF(path_config.body_model_paths(), pretrained=False, model_cfg=node.MODEL.PyMAF, res_cfg=node.RES_MODEL)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return _build('hr32')


def test_hr32_eval_forward_matches_the_res50_outputs(model):
    model.eval()
    with torch.no_grad():
        preds, vis_feats = model(torch.randn(1, 3, 224, 224))
    assert len(preds['smpl_out']) == 4
    for out in preds['smpl_out']:
        assert {k: tuple(v.shape) for k, v in out.items()} == SMPL_SHAPES
        assert all(torch.isfinite(v).all() for v in out.values())
    # The coarsest map is HRNet-W32's 1/32 branch (8 x 32 channels); the loop's maps match ResNet-50's.
    assert [tuple(f.shape[1:]) for f in vis_feats] == [(256, 7, 7), (256, 14, 14), (256, 28, 28), (256, 56, 56)]
    assert {k: tuple(v.shape) for k, v in preds['dp_out'][0].items()} == {
        'predict_u': (1, 25, 56, 56), 'predict_v': (1, 25, 56, 56),
        'predict_uv_index': (1, 25, 56, 56), 'predict_ann_index': (1, 15, 56, 56)}
    # The feedback steps do change the estimate.
    assert not torch.equal(preds['smpl_out'][0]['pred_pose'], preds['smpl_out'][-1]['pred_pose'])
    assert not any(key.startswith('deconv_layers') for key in model.state_dict())


def test_hr32_train_forward_sends_gradients_through_the_backbone(model):
    assert layers_without_gradient(model, batch_size=1) == []
    assert model.feature_extractor.backbone.conv1.weight.grad.abs().sum() > 0


def test_fewer_iterations_sample_the_finest_maps():
    torch.manual_seed(0)
    net = _build('hr32', n_iter=1).eval()
    with torch.no_grad():
        preds, vis_feats = net(torch.randn(1, 3, 224, 224))
    assert len(preds['smpl_out']) == 2
    assert [tuple(f.shape[2:]) for f in vis_feats] == [(7, 7), (56, 56)]


def test_unsupported_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="'res101' is not supported; choose one of res50, res18, hr32, hr48"):
        _build('res101')


def test_hrnet_w48_and_w32_sizes():
    w48 = HRNet(48)
    n48 = sum(p.numel() for p in w48.parameters())
    assert 60e6 < n48 < 70e6  # HRNet-W48's trunk is ~65M parameters (the paper's pose net: 63.6M)
    n32 = sum(p.numel() for p in HRNet(32).parameters())
    assert 26e6 < n32 < 32e6  # HRNet-W32: ~28.5M in the paper
    assert w48.channels == [48, 96, 192, 384]
    # The pyramid skips the fuse layers into the unused 1/32 output of the last module.
    pyramid = HRNetPyramid(48)
    assert not any(k.startswith('backbone.stage4.2.fuse_layers.3.') for k in pyramid.state_dict())
    assert any(k.startswith('stage4.2.fuse_layers.3.') for k in w48.state_dict())


def test_hrnet_full_trunk_outputs_four_resolutions():
    net = HRNet(32).eval()
    with torch.no_grad():
        xs = net(torch.randn(1, 3, 128, 96))
    assert [tuple(x.shape[1:]) for x in xs] == [(32, 32, 24), (64, 16, 12), (128, 8, 6), (256, 4, 3)]


def test_imagenet_weights_load_from_a_local_file_and_absence_warns_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(hrnet, '_warned_missing', set())
    source = HRNet(32)
    state = {'state_dict': {'module.' + k: v for k, v in source.state_dict().items()}}
    state['state_dict']['module.classifier.weight'] = torch.zeros(1000, 2048)  # a head key to be ignored
    torch.save(state, tmp_path / 'w32.pth')
    target = HRNetPyramid(32)
    assert target.load_imagenet(tmp_path / 'w32.pth')
    assert torch.equal(target.backbone.stage4[0].branches[3][0].conv1.weight,
                       source.stage4[0].branches[3][0].conv1.weight)
    with pytest.raises(ValueError, match='shapes differ'):
        HRNet(48).load_imagenet(tmp_path / 'w32.pth')
    with caplog.at_level(logging.WARNING, logger='models.hrnet'):
        assert not target.load_imagenet(tmp_path / 'absent.pth')
        assert not target.load_imagenet(tmp_path / 'absent.pth')
    assert sum('absent.pth' in r.getMessage() for r in caplog.records) == 1
