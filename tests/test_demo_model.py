"""demo.py with the real PyMAF network (untrained or demo weights) on the stand-in body model, CPU, tiny inputs."""
from __future__ import annotations

import json
import pickle

import numpy as np
import torch

import demo
from core.inference.predictor import PyMAFPredictor
from utils.video.io import VideoWriter


def _clip(tmp_path) -> tuple:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3)).astype(np.uint8) for _ in range(2)]
    with VideoWriter(tmp_path / 'noise.mp4', fps=10) as writer:
        for f in frames:
            writer.write(f)
    anno = [{'idx': 3, 'frames': [{'frame_id': t, 'rect': {'tl': {'x': 0.3, 'y': 0.1}, 'br': {'x': 0.6, 'y': 0.9}}}
                                  for t in range(2)]}]
    (tmp_path / 'anno.json').write_text(json.dumps(anno))
    return tmp_path / 'noise.mp4', tmp_path / 'anno.json'


def test_demo_runs_with_the_real_network(tmp_path, capsys):
    video, anno = _clip(tmp_path)
    torch.manual_seed(0)
    status = demo.main(['--vid_file', str(video), '--use_gt', '--anno_file', str(anno), '--output_folder',
                        str(tmp_path / 'out'), '--render_ratio', '0.5', '--no_frames', '--export'])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.count('NOTE:') <= 1
    with open(tmp_path / 'out' / 'noise' / 'output.pkl', 'rb') as f:
        results = pickle.load(f)
    person = results[3]
    assert person['verts'].shape == (2, 6890, 3) and person['pose'].shape == (2, 72)
    assert person['joints3d'].shape == (2, 49, 3) and person['orig_cam'].shape == (2, 4)
    assert np.all(np.isfinite(person['verts']))
    assert (tmp_path / 'out' / 'noise' / 'noise_result.mp4').stat().st_size > 0
    # --export writes the animation files of the tracked person with the network's own body model.
    exported = sorted(p.name for p in (tmp_path / 'out' / 'noise' / 'export').iterdir())
    assert [name for name in exported if name.endswith(('.glb', '.bvh', '.npz'))] == exported
    assert {name.rsplit('.', 1)[1] for name in exported} == {'glb', 'bvh', 'npz'}
    smpl_npz = np.load(next((tmp_path / 'out' / 'noise' / 'export').glob('*.npz')))
    np.testing.assert_allclose(np.concatenate([smpl_npz['global_orient'], smpl_npz['body_pose']], axis=1),
                               person['pose'], atol=1e-5)


def test_wrong_checkpoint_is_named(tmp_path, capsys):
    video, anno = _clip(tmp_path)
    ckpt = tmp_path / 'resnet.pt'
    torch.save({'model': {'fc.weight': torch.zeros(1000, 2048)}}, ckpt)
    status = demo.main(['--vid_file', str(video), '--checkpoint', str(ckpt), '--output_folder', str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 1 and 'not a PyMAF checkpoint' in err and 'fc.weight' in err and 'missing' in err


def test_predictor_api_on_an_image():
    predictor = PyMAFPredictor.from_checkpoint(None, 'cpu', batch_size=2)
    image = np.random.default_rng(1).integers(0, 255, (120, 200, 3)).astype(np.uint8)
    boxes = np.array([[60, 60, 80, 80], [140, 50, 60, 60], [100, 70, 100, 100]], np.float32)
    out = predictor.predict_image(image, boxes)
    assert out['verts'].shape == (3, 6890, 3) and out['pred_cam'].shape == (3, 3)
    assert out['cam_t'].shape == (3, 3) and out['kp2d_px'].shape == (3, 49, 2)
    # Batching does not change the result.
    single = predictor.predict_image(image, boxes[1:2])
    np.testing.assert_allclose(single['verts'][0], out['verts'][1], atol=1e-4)


def test_default_output_is_frame_by_frame_and_smoothing_is_consistent(tmp_path, capsys):
    from core.inference.predictor import crop_to_image_px
    from utils.geometry import projection
    from utils.video.io import open_frame_source

    video, anno = _clip(tmp_path)
    base = ['--vid_file', str(video), '--use_gt', '--anno_file', str(anno), '--no_render']
    torch.manual_seed(0)
    assert demo.main(base + ['--output_folder', str(tmp_path / 'plain')]) == 0
    torch.manual_seed(0)
    assert demo.main(base + ['--output_folder', str(tmp_path / 'smooth'), '--smooth']) == 0
    capsys.readouterr()
    plain = pickle.load(open(tmp_path / 'plain' / 'noise' / 'output.pkl', 'rb'))[3]
    smooth = pickle.load(open(tmp_path / 'smooth' / 'noise' / 'output.pkl', 'rb'))[3]

    # Off by default: the same numbers as running the network on each frame by itself.
    torch.manual_seed(0)
    weights, _ = demo.resolve_checkpoint(demo.build_parser().parse_args(base))  # what the demo ran with
    predictor = PyMAFPredictor.from_checkpoint(weights, 'cpu', backend='auto', precision='auto')  # the demo's engine
    frame1 = dict(open_frame_source(video).frames())[1]
    single = predictor.predict_image(frame1, plain['bboxes'][1:2])
    np.testing.assert_allclose(plain['pose'][1], single['pose'][0], atol=1e-4)
    np.testing.assert_allclose(plain['verts'][1], single['verts'][0], atol=1e-4)

    # Smoothed: the first frame is unchanged, and joints/keypoints agree with the smoothed parameters.
    np.testing.assert_allclose(smooth['pose'][0], plain['pose'][0], atol=1e-4)
    kp = projection(torch.as_tensor(smooth['joints3d']), torch.as_tensor(smooth['pred_cam'])).numpy()
    np.testing.assert_allclose(smooth['kp2d_px'], crop_to_image_px(kp, smooth['bboxes']), atol=1e-2)


def test_missing_data_file_is_named(tmp_path, capsys, monkeypatch):
    import shutil

    import core.path_config as path_config

    data = tmp_path / 'data'
    (data / 'smpl').mkdir(parents=True)
    neutral = path_config.body_model_paths().smpl_dir / 'SMPL_NEUTRAL.pkl'
    shutil.copy(neutral, data / 'smpl' / 'SMPL_NEUTRAL.pkl')  # SMPL present, its companion files missing
    monkeypatch.setattr(path_config, 'DATA_DIR', data)
    monkeypatch.setattr(demo, 'DEMO_WEIGHTS_DIR', tmp_path / 'no_demo_weights')  # they bring their own body
    video, _ = _clip(tmp_path)
    status = demo.main(['--vid_file', str(video), '--output_folder', str(tmp_path / 'out'), '--no_render'])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith('error:') and err.count('\n') == 1
    assert 'not found' in err and str(data) in err
    assert not (tmp_path / 'out' / 'noise').exists()


def test_predict_video_runs_per_frame_stages_and_matches_single_images():
    """Crops are batched across frames (batch 2 splits frame 0's people); each frame's stage call still sees
    all of that frame's people, and what it adds reaches the per-person results."""
    torch.manual_seed(0)
    predictor = PyMAFPredictor.from_checkpoint(None, 'cpu', batch_size=2)
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (96, 128, 3)).astype(np.uint8) for _ in range(3)]
    boxes = {0: [(1, np.array([40, 48, 50, 50], np.float32)), (2, np.array([90, 40, 40, 40], np.float32)),
                 (3, np.array([64, 48, 60, 60], np.float32))],
             2: [(2, np.array([88, 44, 42, 42], np.float32))]}
    calls = []

    def count_people(frame_rgb, index, people):
        calls.append((index, len(people['pose']), frame_rgb is frames[index]))
        return dict(people, people_in_frame=np.full(len(people['pose']), len(people['pose'])))

    results = predictor.predict_video(enumerate(frames), boxes, stages=[count_people])
    assert calls == [(0, 3, True), (2, 1, True)]
    assert sorted(results) == [1, 2, 3] and results[2]['frame_ids'].tolist() == [0, 2]
    assert results[2]['people_in_frame'].tolist() == [3, 1]
    single = predictor.predict_image(frames[2], boxes[2][0][1][None])
    np.testing.assert_allclose(results[2]['verts'][1], single['verts'][0], atol=1e-4)
    np.testing.assert_allclose(results[2]['cam_t'][1], single['cam_t'][0], atol=1e-4)
