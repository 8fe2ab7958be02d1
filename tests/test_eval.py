"""eval.py end to end on a synthetic dataset, and the evaluator's protocol on known predictions."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np
import pytest
import torch

import eval as eval_script
from core.evaluation.coco import model_predictor
from core.evaluation.evaluator import Evaluator, SegmentationEvaluator
from core.evaluation.protocol import load_eval_assets, load_model
from datasets import synthetic
from datasets.base_dataset import BaseDataset
from tests.lsp_helpers import crop_camera, neutral_bodies, perfect_prediction


@pytest.fixture(scope='module')
def synth_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('synth_eval'))
    npz = synthetic.generate_dataset(out, num_samples=6, seed=11, img_width=160, img_height=160)
    return out, npz


@pytest.fixture(scope='module')
def assets():
    return load_eval_assets(torch.device('cpu'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from core import path_config
    from models import pymaf_net
    from utils.saver import save_checkpoint

    torch.manual_seed(0)
    model = pymaf_net(path_config.SMPL_MEAN_PARAMS, pretrained=False)
    path = str(tmp_path_factory.mktemp('ckpt') / 'model.pt')
    save_checkpoint(path, model)
    return path


def test_perfect_predictions_give_zero_errors(synth_set, assets):
    out, npz = synth_set
    smpl_models, j_regressor = assets
    same_body = {g: smpl_models['neutral'] for g in ('neutral', 'male', 'female')}
    evaluator = Evaluator('3dpw', same_body, j_regressor, eval_pve=True)
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('3dpw', npz_path=npz, img_dir=out), batch_size=6)))
    evaluator.update(perfect_prediction(batch), batch)
    results = evaluator.results()
    assert results['num_samples'] == 6
    assert results['mpjpe_mm'] < 1e-3 and results['pa_mpjpe_mm'] < 1e-3 and results['pve_mm'] < 1e-3


def test_gendered_ground_truth_is_used_on_3dpw(synth_set, assets):
    out, npz = synth_set
    smpl_models, j_regressor = assets
    evaluator = Evaluator('3dpw', smpl_models, j_regressor, eval_pve=True)
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('3dpw', npz_path=npz, img_dir=out), batch_size=6)))
    gt_verts = evaluator._gt_vertices(batch, torch.device('cpu'))
    pose, betas = batch['pose'].float(), batch['betas'].float()
    for i, gender in enumerate(batch['gender'].tolist()):
        body = smpl_models['female' if gender == 1 else 'male']
        expected = body(betas=betas[i:i + 1], body_pose=pose[i:i + 1, 3:], global_orient=pose[i:i + 1, :3]).vertices
        assert torch.allclose(gt_verts[i], expected[0], atol=1e-5)


def test_eval_cli_end_to_end(synth_set, checkpoint, tmp_path, capsys):
    out, npz = synth_set
    json_file = str(tmp_path / 'res.json')
    result_file = str(tmp_path / 'preds.npz')
    # Paths as the library returns them (pathlib), to check that the results file still serialises.
    args = eval_script.parse_args([
        '--checkpoint', checkpoint, '--dataset', '3dpw', '--image_dir', out,
        '--device', 'cpu', '--num_workers', '0', '--batch_size', '4', '--log_freq', '1',
        '--json_file', json_file, '--result_file', result_file])
    args.dataset_file = pathlib.Path(npz)
    report = eval_script.main(args)
    printed = capsys.readouterr().out
    assert '*** Final Results ***' in printed and 'PA-MPJPE' in printed
    saved = json.load(open(json_file))
    assert saved['dataset'] == '3dpw' and 'Procrustes' in saved['protocol']['alignment_pa']
    assert 'gendered' in saved['protocol']['ground_truth']
    with open(checkpoint, 'rb') as f:
        assert saved['checkpoint']['sha256'] == hashlib.sha256(f.read()).hexdigest()
    assert saved['checkpoint']['path'] == checkpoint and 'MODEL:' in saved['config']
    assert saved['body_model'] == {'network': 'standin', 'evaluation': 'standin', 'official_smpl': False}
    res = saved['results']
    assert res['num_samples'] == 6 and res == report['results']
    assert all(np.isfinite(res[k]) and res[k] > 0 for k in ('mpjpe_mm', 'pa_mpjpe_mm', 'pve_mm'))
    assert res['pa_mpjpe_mm'] <= res['mpjpe_mm']
    preds = np.load(result_file)
    assert preds['pred_joints'].shape == (6, 17, 3) and preds['pose'].shape == (6, 72)
    assert preds['betas'].shape == (6, 10) and preds['camera'].shape == (6, 3)
    assert os.path.isfile(result_file + '.mat')


def test_missing_dataset_file_names_the_file(tmp_path):
    args = eval_script.parse_args(['--dataset', '3dpw', '--dataset_file', str(tmp_path / 'missing.npz'),
                                   '--image_dir', str(tmp_path), '--device', 'cpu'])
    with pytest.raises(FileNotFoundError, match='missing.npz'):
        eval_script.main(args)


def test_coco_model_predictor_shapes(synth_set, checkpoint, assets):
    out, npz = synth_set
    model = load_model(checkpoint, torch.device('cpu'))
    predict = model_predictor(model, assets[0]['neutral'])
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('coco', npz_path=npz, img_dir=out), batch_size=2)))
    kp = predict(batch, torch.device('cpu'))
    assert kp.shape == (2, 17, 2) and torch.all(torch.isfinite(kp))


def test_lsp_foreground_segmentation_of_exact_meshes(tmp_path, assets):
    smpl_models, _ = assets
    neutral = smpl_models['neutral']
    out = str(tmp_path / 'lsp')
    # Bodies on the optical axis seen from far away: the crop camera then reproduces the image camera.
    npz = synthetic.generate_dataset(out, num_samples=4, seed=5, img_width=200, img_height=240, save_masks=True,
                                     focal_range=(8.0, 8.5), max_offset=0.0, bodies=neutral_bodies())
    data = dict(np.load(npz))
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('lsp', npz_path=npz, img_dir=out), batch_size=4)))
    pred = perfect_prediction(batch)
    pose = batch['pose'].float()
    verts = neutral(betas=batch['betas'].float(), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    depth = data['cam_t'][:, 2] + verts[:, :, 2].mean(dim=1).numpy()
    pred['pred_cam'] = torch.stack([crop_camera(data, i, depth[i], 200, 240) for i in range(4)])
    good = SegmentationEvaluator(neutral, mask_dir=out)
    good.update(pred, batch)
    # Not 1.0: the original's crop window is truncated to whole pixels, which shifts pasted masks by < 1 px.
    assert good.results()['fg_accuracy'] > 0.98 and good.results()['fg_f1'] > 0.92
    pred['pred_cam'][:, 1] += 0.3  # shift every body sideways
    bad = SegmentationEvaluator(neutral, mask_dir=out)
    bad.update(pred, batch)
    assert bad.results()['fg_f1'] < good.results()['fg_f1'] - 0.1
