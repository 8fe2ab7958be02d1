"""PyMAF model: state_dict layout, forward pass, gradients, checkpoints and configuration."""
import json
from pathlib import Path

import pytest
import torch

from core import cfgs, path_config
from models import hmr, pymaf_net
from tests.model_checks import layers_without_gradient
from utils.saver import CheckpointError, load_checkpoint, save_checkpoint

# [key, shape, dtype] of the released checkpoint's state_dict, taken from the original model.
REFERENCE = Path(__file__).resolve().parent / 'data' / 'pymaf_res50_state_dict.json'


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return pymaf_net(path_config.SMPL_MEAN_PARAMS, pretrained=False)


def test_state_dict_matches_the_released_checkpoint_layout(model):
    state = model.state_dict()
    reference = json.loads(REFERENCE.read_text())
    assert len(state) == len(reference) == 441
    assert list(state) == [key for key, _, _ in reference]
    for key, shape, dtype in reference:
        assert list(state[key].shape) == shape, key
        assert str(state[key].dtype) == 'torch.' + dtype, key


def test_forward_eval_shapes_and_values(model):
    model.eval()
    with torch.no_grad():
        preds, vis_feats = model(torch.randn(2, 3, 224, 224))
    assert len(preds['smpl_out']) == 4
    shapes = {'theta': (2, 85), 'verts': (2, 6890, 3), 'kp_2d': (2, 49, 2), 'kp_3d': (2, 49, 3),
              'smpl_kp_3d': (2, 24, 3), 'rotmat': (2, 24, 3, 3), 'pred_cam': (2, 3), 'pred_shape': (2, 10),
              'pred_pose': (2, 144)}
    for out in preds['smpl_out']:
        assert {k: tuple(v.shape) for k, v in out.items()} == shapes
        assert all(torch.isfinite(v).all() for v in out.values())
    assert [tuple(f.shape[1:]) for f in vis_feats] == [(2048, 7, 7), (256, 14, 14), (256, 28, 28), (256, 56, 56)]
    assert preds['dp_out'][0]['predict_uv_index'].shape == (2, 25, 56, 56)
    assert preds['dp_out'][0]['predict_ann_index'].shape == (2, 15, 56, 56)
    # The first output is the mean-parameter start: identical for every image.
    first = preds['smpl_out'][0]
    assert torch.equal(first['pred_pose'][0], first['pred_pose'][1])
    # theta = [cam, betas, axis-angle pose] of the same estimate.
    last = preds['smpl_out'][-1]
    assert torch.equal(last['theta'][:, :3], last['pred_cam'])
    assert torch.equal(last['theta'][:, 3:13], last['pred_shape'])


def test_h36m_regressor_gives_pelvis_centred_14_joints(model):
    model.eval()
    j_regressor = torch.rand(17, 6890)
    j_regressor /= j_regressor.sum(1, keepdim=True)
    with torch.no_grad():
        preds, _ = model(torch.randn(1, 3, 224, 224), J_regressor=j_regressor)
    out = preds['smpl_out'][-1]
    assert out['kp_3d'].shape == (1, 14, 3)
    h36m = j_regressor @ out['verts'][0]
    assert torch.allclose(out['kp_3d'][0], h36m[[6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]] - h36m[0], atol=1e-5)


def test_gradients_reach_every_trainable_layer(model):
    assert layers_without_gradient(model, batch_size=2) == []


def test_checkpoint_round_trip_and_placeholder_body(model, tmp_path):
    model.eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    cfg = cfgs.get_cfg_defaults()
    path = save_checkpoint(tmp_path / 'ckpt.pt', model, optimizer, epoch=3, step=42, cfg=cfg)
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pt']  # nothing half-written left behind
    # A model built without any body files takes SMPL, Dmap and mean params from the checkpoint.
    blank = pymaf_net(pretrained=False, placeholder_body=True).eval()
    data = load_checkpoint(blank, path, strict=True)
    assert data['epoch'] == 3 and data['total_step_count'] == 42 and 'N_ITER: 3' in data['cfg']
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        a = model(x)[0]['smpl_out'][-1]['verts']
        b = blank(x)[0]['smpl_out'][-1]['verts']
    assert torch.equal(a, b)


def test_mismatched_checkpoint_is_reported(tmp_path):
    torch.save({'model': {'fc.weight': torch.zeros(2)}}, tmp_path / 'other.pt')
    blank = pymaf_net(pretrained=False, placeholder_body=True)
    with pytest.raises(CheckpointError, match='missing: points_grid.*unexpected: fc.weight'):
        load_checkpoint(blank, tmp_path / 'other.pt')
    (tmp_path / 'junk.pt').write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match='not a readable'):
        load_checkpoint(blank, tmp_path / 'junk.pt')


def test_hmr_baseline_outputs():
    model = hmr(pretrained=False).eval()
    with torch.no_grad():
        rotmat, betas, cam = model(torch.randn(2, 3, 224, 224))
    assert rotmat.shape == (2, 24, 3, 3) and betas.shape == (2, 10) and cam.shape == (2, 3)


def test_config_defaults_yaml_and_overrides(tmp_path):
    defaults = cfgs.get_cfg_defaults()
    defaults.MODEL.PyMAF.N_ITER = 1
    assert cfgs.get_cfg_defaults().MODEL.PyMAF.N_ITER == 3  # a clone, not the shared node
    node = cfgs.update_cfg(cfgs.DEFAULT_CFG_FILE, ['MODEL.PyMAF.N_ITER', '2', 'SOLVER.BASE_LR', '0.001'])
    assert node.MODEL.PyMAF.N_ITER == 2 and node.SOLVER.BASE_LR == 0.001
    with pytest.raises(KeyError, match='MODEL.PyMAF.NITER'):
        cfgs.update_cfg(None, ['MODEL.PyMAF.NITER', '2'])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('LOSS:\n  KP2D_W: 1.0\n')
    with pytest.raises(KeyError, match='unknown config key'):
        cfgs.update_cfg(bad)
    with pytest.raises(ValueError, match='odd number'):
        cfgs.update_cfg(None, ['MODEL.PyMAF.N_ITER'])
    node = cfgs.update_cfg(None, ['SOLVER.BASE_LR', '1', 'SOLVER.EPOCHS', '[0, 13, 17]'])  # an int for a float key
    assert node.SOLVER.BASE_LR == 1.0 and isinstance(node.SOLVER.BASE_LR, float) and node.SOLVER.EPOCHS == [0, 13, 17]
    with pytest.raises(ValueError, match='MODEL.PyMAF.N_ITER 2.5'):
        cfgs.update_cfg(None, ['MODEL.PyMAF.N_ITER', '2.5'])
    assert cfgs.load_cfg(None, ['MODEL.PyMAF.N_ITER', '2']).MODEL.PyMAF.N_ITER == 2
    assert cfgs.load_cfg().MODEL.PyMAF.N_ITER == 3  # a new node each time: nothing leaks between runs


def test_every_config_key_is_read_and_retired_keys_still_load(tmp_path):
    """Each leaf key of the config is read somewhere in the code; the original's unread keys are accepted and
    ignored (its YAML files and older checkpoints load), not kept as dead settings."""
    import re
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    files = subprocess.run(['git', 'ls-files', '*.py'], cwd=repo, capture_output=True, text=True).stdout.split()
    sources = [(repo / f).read_text() for f in files
               if f != 'core/cfgs.py' and not f.startswith('tests/') and (repo / f).is_file()]

    def leaves(node, prefix=''):
        for key, value in node.items():
            yield from leaves(value, f'{prefix}{key}.') if isinstance(value, type(node)) else [prefix + key]

    def read(key):
        """``<section>.<leaf>``, or ``.<leaf>`` in a file that names the section (e.g. ``solver_cfg.TYPE``)."""
        *sections, leaf = key.split('.')
        attr = re.compile(r'\.' + re.escape(leaf) + r'\b')
        return any(attr.search(src) and all(section in src for section in sections) for src in sources)

    unread = [key for key in leaves(cfgs.get_cfg_defaults()) if not read(key)]
    assert not unread, unread
    original = tmp_path / 'original.yaml'
    original.write_text('SOLVER:\n  MAX_ITER: 500000\nMODEL:\n  PyMAF:\n    MAF_ON: False\n    N_ITER: 2\n'
                        'POSE_RES_MODEL:\n  PRETRAINED_IM: x.pth\n  EXTRA:\n    SIGMA: 2\n')
    node = cfgs.load_cfg(original)
    assert node.MODEL.PyMAF.N_ITER == 2 and 'MAX_ITER' not in node.SOLVER and 'EXTRA' not in node.POSE_RES_MODEL
