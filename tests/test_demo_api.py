"""Tests of the demo's inference API helpers that need no trained model: result files, checkpoint checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.inference.predictor import CheckpointMismatchError, crop_to_image_px, load_weights
from utils.export.results import load_output_pkl, save_obj, save_output_npz, save_output_pkl
from utils.geometry import orig_cam_to_cam_t


def _fake_results(rng) -> dict:
    results = {}
    for pid, n in ((1, 3), (4, 2)):
        results[pid] = {
            'pred_cam': rng.normal(size=(n, 3)).astype(np.float32),
            'orig_cam': rng.normal(size=(n, 4)).astype(np.float32),
            'verts': rng.normal(size=(n, 6890, 3)).astype(np.float32),
            'pose': rng.normal(size=(n, 72)).astype(np.float32),
            'betas': rng.normal(size=(n, 10)).astype(np.float32),
            'joints3d': rng.normal(size=(n, 49, 3)).astype(np.float32),
            'joints2d': None,
            'bboxes': rng.normal(size=(n, 4)).astype(np.float32),
            'frame_ids': np.arange(n) + pid,
            'cam_t': rng.normal(size=(n, 3)).astype(np.float32),
            'kp2d_px': rng.normal(size=(n, 49, 2)).astype(np.float32),
        }
    return results


def test_output_pkl_is_plain_pickle_and_roundtrips(tmp_path):
    results = _fake_results(np.random.default_rng(0))
    path = tmp_path / 'output.pkl'
    save_output_pkl(results, path)
    with open(path, 'rb') as f:
        raw = pickle.load(f)  # no joblib needed
    assert sorted(raw) == [1, 4] and raw[1]['joints2d'] is None
    loaded = load_output_pkl(path)
    np.testing.assert_array_equal(loaded[4]['verts'], results[4]['verts'])
    assert not list(tmp_path.glob('.*tmp'))  # the temporary file is gone
    (tmp_path / 'bad.pkl').write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match='not a demo result file'):
        load_output_pkl(tmp_path / 'bad.pkl')
    with pytest.raises(FileNotFoundError):
        load_output_pkl(tmp_path / 'missing.pkl')


def test_output_npz_stacks_rows(tmp_path):
    results = _fake_results(np.random.default_rng(1))
    faces = np.arange(30).reshape(10, 3)
    save_output_npz(results, tmp_path / 'output.npz', 640, 480, 25.0, faces, ['a', 'b', 'c', 'd', 'e'])
    data = np.load(tmp_path / 'output.npz')
    np.testing.assert_array_equal(data['person_ids'], [1, 1, 1, 4, 4])
    np.testing.assert_array_equal(data['frame_ids'], [1, 2, 3, 4, 5])
    assert data['verts'].shape == (5, 6890, 3) and data['pose'].shape == (5, 72)
    np.testing.assert_array_equal(data['verts'][3], results[4]['verts'][0])
    assert int(data['img_width']) == 640 and float(data['focal_length']) == 5000.0
    assert list(data['frame_names']) == ['a', 'b', 'c', 'd', 'e'] and data['faces'].shape == (10, 3)


def test_save_obj(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    save_obj(tmp_path / 'm' / 'x.obj', verts, np.array([[0, 1, 2]]))
    lines = (tmp_path / 'm' / 'x.obj').read_text().splitlines()
    assert lines[1] == 'v 1.000000 0.000000 0.000000' and lines[3] == 'f 1 2 3'


def test_checkpoint_checks(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    good = tmp_path / 'good.pt'
    torch.save({'model': model.state_dict(), 'epoch': 3}, good)
    load_weights(model, good)
    bad = tmp_path / 'bad.pt'
    torch.save({'model': {'0.weight': torch.zeros(5, 3), '2.bias': torch.zeros(2)}}, bad)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(model, bad)
    msg = str(err.value)
    assert '3 missing: 0.bias, 1.weight, 1.bias' in msg and '1 unexpected: 2.bias' in msg
    assert '0.weight checkpoint (5, 3) vs model (4, 3)' in msg
    assert '\n' not in msg
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMismatchError, match='not a readable PyTorch checkpoint'):
        load_weights(model, tmp_path / 'junk.pt')
    torch.save([1, 2, 3], tmp_path / 'list.pt')
    with pytest.raises(CheckpointMismatchError, match='holds no model weights'):
        load_weights(model, tmp_path / 'list.pt')
    with pytest.raises(FileNotFoundError):
        load_weights(model, tmp_path / 'missing.pt')


def test_camera_helpers():
    bboxes = np.array([[100.0, 50.0, 40.0, 40.0]])
    px = crop_to_image_px(np.array([[[0.0, 0.0], [1.0, -1.0]]]), bboxes, scale=1.5)
    np.testing.assert_allclose(px[0], [[100, 50], [130, 20]])
    cam_t = orig_cam_to_cam_t(np.array([[0.5, 0.8, 0.1, -0.2]]), img_height=500)
    np.testing.assert_allclose(cam_t, [[0.1, -0.2, 2 * 5000 / (500 * 0.8)]], rtol=1e-6)


def test_checkpoint_with_body_model_needs_no_body_files(tmp_path, monkeypatch):
    from core import path_config
    from core.inference.predictor import PyMAFPredictor
    from models import pymaf_net
    from utils.saver import save_checkpoint

    source = pymaf_net(pretrained=False)
    ckpt = save_checkpoint(tmp_path / 'full.pt', source)

    def no_body_files(*args, **kwargs):
        raise AssertionError('the body model must come from the checkpoint')

    monkeypatch.setattr(path_config, 'body_model_paths', no_body_files)
    predictor = PyMAFPredictor.from_checkpoint(ckpt)
    smpl = predictor.model.regressor[0].smpl
    assert torch.equal(smpl.v_template, source.regressor[0].smpl.v_template)
    assert np.array_equal(smpl.faces, source.regressor[0].smpl.faces)
    x = torch.randn(1, 3, 224, 224)
    out = predictor.predict_crops(x)
    with torch.no_grad():
        ref = source.eval()(x)[0]['smpl_out'][-1]['verts'].numpy()
    np.testing.assert_allclose(out['verts'][0], ref[0], atol=1e-6)
