"""Networks rebuilt from checkpoints: the config inside train.py's checkpoints, compact (demo) weight files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import demo
from core import cfgs
from models import pymaf_net
from models.build import build_from_checkpoint, is_body_model_key, save_compact_weights
from utils.saver import read_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
LITE_CFG = REPO / 'configs' / 'demo_weights_lite.yaml'


@pytest.fixture()
def lite_model():
    node = cfgs.load_cfg(LITE_CFG)
    torch.manual_seed(0)
    model = pymaf_net(pretrained=False, cfg=node).eval()
    return model, node


def _final_verts(model, images):
    with torch.no_grad():
        return model.eval()(images)[0]['smpl_out'][-1]['verts']


def test_checkpoint_config_rebuilds_the_light_network(lite_model, tmp_path):
    model, node = lite_model
    path = save_checkpoint(tmp_path / 'lite.pt', model, cfg=node)
    rebuilt = build_from_checkpoint(read_checkpoint(path), path)
    assert rebuilt.backbone_name == 'res18' and rebuilt.feature_extractor.conv1.out_channels == 32
    images = torch.randn(2, 3, 224, 224)
    assert torch.equal(_final_verts(model, images), _final_verts(rebuilt, images))


def test_compact_weights_are_small_and_reproduce_the_outputs(lite_model, tmp_path):
    model, node = lite_model
    path = save_compact_weights(tmp_path / 'demo.pt', model, node, 'standin', 'test weights', extra={'x': 1})
    data = read_checkpoint(path)
    assert not any(is_body_model_key(k) for k in data['model'])
    assert all(v.dtype == torch.float16 for v in data['model'].values() if v.is_floating_point())
    full = save_checkpoint(tmp_path / 'full.pt', model, cfg=node)
    assert path.stat().st_size < full.stat().st_size / 3
    rebuilt = build_from_checkpoint(data, path)
    images = torch.randn(2, 3, 224, 224)
    diff = (_final_verts(model, images) - _final_verts(rebuilt, images)).abs().max().item()
    assert diff < 5e-3, diff  # half-precision weights: within a few millimetres


def test_demo_uses_demo_weights_and_says_what_they_are(lite_model, tmp_path, monkeypatch):
    model, node = lite_model
    weights_dir = tmp_path / 'demo_weights'
    save_compact_weights(weights_dir / 'w.pt', model, node, 'standin', 'stand-in weights, not the paper')
    monkeypatch.setattr(demo, 'DEMO_WEIGHTS_DIR', weights_dir)
    monkeypatch.setattr('core.path_config.PYMAF_CHECKPOINT', tmp_path / 'absent.pt')
    args = demo.build_parser().parse_args(['--img_file', 'x.jpg', '--device', 'cpu'])
    messages = []
    predictor = demo.build_predictor(args, torch.device('cpu'), messages.append)
    assert any('stand-in weights, not the paper' in m for m in messages)
    assert predictor.model.backbone_name == 'res18'


def test_shipped_demo_weights_load_and_say_what_they_are():
    path = REPO / 'assets' / 'demo_weights' / 'pymaf_lite_standin.pt'
    data = read_checkpoint(path)
    assert data['body_model'] == 'standin' and 'not comparable to the paper' in data['description']
    assert data['evaluation']['dataset'] == 'synthetic' and data['training']['step'] > 0
    model = build_from_checkpoint(data, path).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))[0]['smpl_out'][-1]
    assert out['verts'].shape == (1, 6890, 3) and torch.isfinite(out['verts']).all()


def test_shipped_demo_weights_beat_the_mean_pose(tmp_path):
    """On fresh synthetic images (a seed neither the training nor the held-out set uses), the shipped weights
    are far better than their own mean-parameter start (the regressors' updates zeroed)."""
    import copy

    from core.evaluation.evaluator import Evaluator, run_evaluation
    from core.evaluation.protocol import load_eval_assets
    from datasets.base_dataset import BaseDataset
    from datasets.synthetic import generate_dataset

    path = REPO / 'assets' / 'demo_weights' / 'pymaf_lite_standin.pt'
    model = build_from_checkpoint(read_checkpoint(path), path).eval()
    mean_start = copy.deepcopy(model)
    with torch.no_grad():
        for regressor in mean_start.regressor:
            for layer in (regressor.decpose, regressor.decshape, regressor.deccam):
                layer.weight.zero_()
                layer.bias.zero_()
    npz = generate_dataset(str(tmp_path), num_samples=48, seed=2026)
    dataset = BaseDataset('synthetic', npz_path=npz, img_dir=str(tmp_path))
    device = torch.device('cpu')
    smpl_models, j_regressor = load_eval_assets(device)
    scores = {}
    for name, net in (('trained', model), ('mean', mean_start)):
        evaluator = Evaluator('synthetic', smpl_models, j_regressor, eval_pve=True)
        scores[name] = run_evaluation(net, 'synthetic', dataset, device, evaluator, batch_size=16,
                                                  log_freq=0)
    trained, mean = scores['trained'], scores['mean']
    assert trained['mpjpe_mm'] < 0.6 * mean['mpjpe_mm'] and trained['pve_mm'] < 0.6 * mean['pve_mm']
    assert trained['pa_mpjpe_mm'] < 0.85 * mean['pa_mpjpe_mm']


def test_checkpoints_store_each_body_array_once(lite_model, tmp_path):
    """The released layout (a body model under every regressor, a downsampling matrix under every extractor)
    with one tensor behind the copies, also after a dtype round trip, so a file holds each array once."""
    model, node = lite_model
    model = model.double().float()
    assert all(r.smpl is model.regressor[0].smpl for r in model.regressor)
    assert all(m.Dmap is model.maf_extractor[0].Dmap for m in model.maf_extractor)
    state = model.state_dict()
    assert {'regressor.2.smpl.posedirs', 'maf_extractor.2.Dmap'} <= state.keys()
    unique = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in state.values()}
    everything = sum(v.untyped_storage().nbytes() for v in state.values())
    path = save_checkpoint(tmp_path / 'model.pt', model, cfg=node)
    assert path.stat().st_size < sum(unique.values()) + 1_000_000 < everything - 50_000_000
    reloaded = build_from_checkpoint(read_checkpoint(path), path).eval()
    assert reloaded.regressor[1].smpl is reloaded.regressor[0].smpl
    images = torch.randn(2, 3, 224, 224)
    assert torch.equal(_final_verts(model.eval(), images), _final_verts(reloaded, images))
