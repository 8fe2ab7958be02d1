"""The feedback loop's shortcuts against straightforward computations: sparse mesh downsampling, the cached
mean-parameter start, the stacked IUV head, precomputed SMPL joint bases and the deconvolution stages.

Each shortcut caches something derived from buffers or weights; the tests also check that the cache
follows a checkpoint load, an in-place change, a dtype change and a copy of the model.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from core import cfgs, path_config
from models import pymaf_net
from models.iuv_predictor import HEADS, IUV_predict_layer
from models.maf_extractor import MAF_Extractor
from models.pymaf_net import PyMAF
from models.smpl import SMPL, BufferStamp
from utils.geometry import batch_rodrigues

ATOL = 1e-5


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return pymaf_net(path_config.SMPL_MEAN_PARAMS, pretrained=False).eval()


def _random_dmap(seed: int, per_row: int = 3) -> torch.Tensor:
    """(431, 6890) with ``per_row`` random non-zeros per row, and one empty row."""
    gen = torch.Generator().manual_seed(seed)
    dmap = torch.zeros(431, 6890)
    for row in range(431):
        dmap[row, torch.randperm(6890, generator=gen)[:per_row]] = torch.rand(per_row, generator=gen)
    dmap[7] = 0
    return dmap


def test_sparse_downsampling_equals_the_dense_product_and_follows_the_buffer():
    extractor = MAF_Extractor([256, 128, 64, 5], _random_dmap(0).numpy())
    verts = torch.randn(3, 6890, 3)
    assert torch.allclose(extractor.downsample(verts), extractor.Dmap @ verts, atol=ATOL)
    assert torch.equal(extractor.downsample(verts)[:, 7], torch.zeros(3, 3))
    # A checkpoint load overwrites the buffer in place: the next call uses the new matrix.
    extractor.load_state_dict({**extractor.state_dict(), 'Dmap': _random_dmap(1, per_row=5)})
    assert torch.allclose(extractor.downsample(verts), extractor.Dmap @ verts, atol=ATOL)
    with torch.no_grad():
        extractor.Dmap.mul_(2)
    assert torch.allclose(extractor.downsample(verts), extractor.Dmap @ verts, atol=ATOL)
    extractor.double()
    assert torch.allclose(extractor.downsample(verts.double()), extractor.Dmap @ verts.double(), atol=ATOL)
    # The derived rows are plain attributes: the state_dict is the original's.
    assert list(extractor.state_dict()) == ['Dmap', 'conv0.weight', 'conv0.bias', 'conv1.weight', 'conv1.bias',
                                            'conv2.weight', 'conv2.bias']


def test_placeholder_dmap_downsamples_to_zeros_until_a_checkpoint_fills_it():
    extractor = MAF_Extractor([256, 128, 64, 5])
    verts = torch.randn(1, 6890, 3)
    assert torch.equal(extractor.downsample(verts), torch.zeros(1, 431, 3))
    extractor.load_state_dict({**extractor.state_dict(), 'Dmap': _random_dmap(2)})
    assert torch.allclose(extractor.downsample(verts), extractor.Dmap @ verts, atol=ATOL)


def test_cached_mean_start_equals_a_fresh_computation(model):
    regressor = model.regressor[0]
    x = torch.randn(3, 2048)
    fresh = regressor._mean_output(3, None)
    with torch.inference_mode():
        cached = regressor.forward_init(x)
        again = regressor.forward_init(x)
    assert set(cached) == set(fresh)
    for key in fresh:
        assert cached[key].shape == fresh[key].shape, key
        assert torch.allclose(cached[key], fresh[key], atol=ATOL), key
    # Every call hands out its own tensors: changing one output leaves the cache intact.
    with torch.inference_mode():
        again['verts'].zero_()
        assert torch.allclose(regressor.forward_init(x)['verts'], fresh['verts'], atol=ATOL)


def test_cached_mean_start_follows_buffers_and_joint_regressor(model):
    regressor = copy.deepcopy(model.regressor[0])
    x = torch.randn(2, 2048)
    j_regressor = torch.rand(17, 6890)
    j_regressor /= j_regressor.sum(1, keepdim=True)
    with torch.no_grad():
        before = regressor.forward_init(x)['kp_2d']
        with_h36m = regressor.forward_init(x, J_regressor=j_regressor)['kp_3d']
        assert with_h36m.shape == (2, 14, 3)
        assert torch.allclose(with_h36m, regressor._mean_output(2, j_regressor)['kp_3d'], atol=ATOL)
        other = j_regressor.flip(0)
        assert torch.allclose(regressor.forward_init(x, J_regressor=other)['kp_3d'],
                              regressor._mean_output(2, other)['kp_3d'], atol=ATOL)
        assert torch.equal(regressor.forward_init(x)['kp_2d'], before)  # cached again without J_regressor
        state = regressor.state_dict()
        state['init_cam'] = state['init_cam'] * 2
        state['smpl.v_template'] = state['smpl.v_template'] + 0.1
        regressor.load_state_dict(state)
        after = regressor.forward_init(x)
        assert not torch.allclose(after['kp_2d'], before)
        fresh = regressor._mean_output(2, None)
        for key in fresh:
            assert torch.allclose(after[key], fresh[key], atol=ATOL), key


def test_train_mode_mean_start_is_computed_each_time_with_gradients(model):
    regressor = copy.deepcopy(model.regressor[0]).train()
    regressor.init_pose.requires_grad_(True)  # a stand-in for anything upstream that needs gradients
    out = regressor.forward_init(torch.randn(2, 2048))
    out['verts'].sum().backward()
    assert regressor.init_pose.grad is not None and regressor.init_pose.grad.abs().sum() > 0


def test_stacked_iuv_head_equals_four_convolutions():
    torch.manual_seed(0)
    head = IUV_predict_layer(feat_dim=32)
    x = torch.randn(2, 32, 12, 12)
    separate = {name: getattr(head, name)(x) for name in HEADS}
    out = head(x)
    assert list(out) == list(HEADS)
    for name in HEADS:
        assert out[name].is_contiguous()
        assert torch.allclose(out[name], separate[name], atol=ATOL), name
    # With autograd every head's weight and bias gets its gradient.
    sum(v.square().mean() for v in out.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # Without autograd the stacked weights are cached, and an optimiser step invalidates them.
    with torch.no_grad():
        head(x)
        torch.optim.SGD(head.parameters(), lr=0.1).step()
        updated = head(x)
        for name in HEADS:
            assert torch.allclose(updated[name], getattr(head, name)(x), atol=ATOL), name


def _smpl(model) -> SMPL:
    return copy.deepcopy(model.regressor[1].smpl)


def test_precomputed_joint_basis_equals_regressing_the_shaped_vertices(model):
    smpl = _smpl(model)
    betas = torch.randn(4, 10)
    v_shaped = smpl.v_template + torch.einsum('bl,vkl->bvk', betas, smpl.shapedirs)
    template, dirs = smpl._joint_basis()
    rest_joints = (template + betas @ dirs).reshape(4, 24, 3)
    assert torch.allclose(rest_joints, smpl.J_regressor @ v_shaped, atol=ATOL)
    # Zero pose: the posed joints are the rest joints.
    identity = torch.eye(3).expand(4, 24, 3, 3)
    _, posed = smpl.lbs(betas, identity)
    assert torch.allclose(posed, smpl.J_regressor @ v_shaped, atol=ATOL)
    # A new template (checkpoint load) moves the joints with it.
    state = smpl.state_dict()
    state['v_template'] = state['v_template'] + torch.tensor([0.0, 0.5, 0.0])
    smpl.load_state_dict(state)
    _, moved = smpl.lbs(betas, identity)
    assert torch.allclose(moved, posed + torch.tensor([0.0, 0.5, 0.0]), atol=ATOL)


def test_smpl_built_under_inference_mode_still_trains(model):
    smpl = _smpl(model)
    betas = torch.randn(2, 10)
    rotmat = batch_rodrigues(torch.randn(48, 3) * 0.3).reshape(2, 24, 3, 3)
    with torch.inference_mode():
        first = smpl(betas, rotmat[:, 1:], rotmat[:, :1], pose2rot=False).vertices
    betas.requires_grad_(True)
    out = smpl(betas, rotmat[:, 1:], rotmat[:, :1], pose2rot=False)
    out.joints.sum().backward()
    assert betas.grad is not None and betas.grad.abs().sum() > 0
    assert torch.allclose(out.vertices.detach(), first, atol=ATOL)
    # float64 after a dtype change: the caches are rebuilt from the new buffers.
    smpl.double()
    assert torch.allclose(smpl(betas.double(), rotmat[:, 1:].double(), rotmat[:, :1].double(),
                               pose2rot=False).vertices.float(), first, atol=ATOL)


def test_buffer_stamp_tracks_identity_and_in_place_changes():
    a, b = torch.zeros(3), torch.ones(3)
    stamp = BufferStamp((a, b))
    assert stamp.matches((a, b))
    assert not stamp.matches((a, b.clone()))
    assert not stamp.matches((a,))
    a.add_(1)
    assert not stamp.matches((a, b))
    assert not copy.deepcopy(stamp).matches((a, b))
    with torch.inference_mode():
        frozen = torch.zeros(2)
    assert not BufferStamp((frozen,)).matches((frozen,))


def test_model_eval_without_autograd_equals_with_autograd(model):
    """The no-grad path (cached mean start and IUV weights) against the always-computed one."""
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        fast, vis_fast = model(x)
    # A copy (taken after the caches exist) keeps its own caches: it follows its own buffers only.
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.regressor[0].init_cam.mul_(2)
        assert torch.allclose(clone(x)[0]['smpl_out'][0]['pred_cam'], 2 * fast['smpl_out'][0]['pred_cam'])
        assert torch.equal(model(x)[0]['smpl_out'][0]['pred_cam'], fast['smpl_out'][0]['pred_cam'])
    slow, vis_slow = model(x)
    for a, b in zip(fast['smpl_out'], slow['smpl_out']):
        for key in a:
            assert torch.allclose(a[key], b[key].detach(), atol=ATOL), key
    for key in fast['dp_out'][0]:
        assert torch.allclose(fast['dp_out'][0][key], slow['dp_out'][0][key].detach(), atol=ATOL), key
    assert all(torch.equal(a, b) for a, b in zip(vis_fast, vis_slow))


@pytest.mark.parametrize('n_iter, ends', [(3, (3, 6, 9)), (2, (6, 9)), (1, (9,))])
def test_deconvolution_stages_split_as_the_original(n_iter, ends):
    node = cfgs.get_cfg_defaults()
    node.MODEL.PyMAF.N_ITER = n_iter
    torch.manual_seed(0)
    net = PyMAF(path_config.body_model_paths(), pretrained=False, model_cfg=node.MODEL.PyMAF,
                res_cfg=node.RES_MODEL).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        _, vis_feats = net(x)
        feat, _ = net.feature_extractor(x)
        expected, start = [], 0
        for end in ends:
            feat = net.deconv_layers[start:end](feat)
            expected.append(feat)
            start = end
    assert len(vis_feats) == n_iter + 1
    assert all(torch.allclose(a, b, atol=ATOL) for a, b in zip(vis_feats[1:], expected))
    assert not any('_cache' in key or 'stage' in key for key in net.state_dict())


def test_iuv_head_in_model_matches_separate_convolutions(model):
    feat = torch.randn(1, 256, 56, 56)
    with torch.no_grad():
        out = model.dp_head(feat)
        for name in HEADS:
            conv = getattr(model.dp_head, name)
            assert torch.allclose(out[name], F.conv2d(feat, conv.weight, conv.bias, padding=1), atol=ATOL)


def test_inference_without_the_iuv_head_gives_the_same_meshes(model):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full, _ = model(x)
        lean, _ = model(x, iuv=False)
    assert len(full['dp_out']) == 1 and lean['dp_out'] == []
    for a, b in zip(full['smpl_out'], lean['smpl_out']):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)
