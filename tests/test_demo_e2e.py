"""End-to-end tests of demo.py on tiny inputs: input, detection/tracking, crops, cameras, rendering, files.

The network is a test double with PyMAF's output contract (a fixed ellipsoid body of SMPL's size and a
fixed crop camera), so these tests check the pipeline around the model, fast; the real network is
exercised in tests/test_demo_model.py.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

import demo
from utils.render.mesh_primitives import uv_sphere
from utils.video.io import VideoWriter, write_png

SPHERE_VERTS, FACES = uv_sphere()
BODY_VERTS = torch.as_tensor(SPHERE_VERTS * np.array([0.25, 0.8, 0.15], np.float32))  # metres, 1.6 m tall
CROP_CAM = (0.9, 0.0, 0.0)


class SMPL(torch.nn.Module):
    """Test double of the SMPL layer: the ellipsoid, whatever the parameters."""

    def forward(self, betas, body_pose, global_orient, pose2rot=True):
        batch = betas.shape[0]
        verts = BODY_VERTS[None].repeat(batch, 1, 1) + betas[:, :1, None] * 0
        return type('Out', (), {'vertices': verts, 'joints': torch.zeros(batch, 49, 3)})()


class FakePyMAF(torch.nn.Module):
    """Test double of the PyMAF network with its output contract."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 3)
        self.smpl = SMPL()

    def forward(self, images):
        batch = images.shape[0]
        cam = torch.tensor([CROP_CAM]).repeat(batch, 1)
        betas = images.mean(dim=(2, 3))[:, :1].repeat(1, 10) * 0.01
        pose = torch.zeros(batch, 72)
        out = self.smpl(betas, pose[:, 3:], pose[:, :3])
        final = {'theta': torch.cat([cam, betas, pose], dim=1), 'verts': out.vertices, 'kp_3d': out.joints,
                 'kp_2d': torch.zeros(batch, 49, 2)}
        return {'smpl_out': [final]}, None

DANCER = Path(__file__).resolve().parents[2] / 'shared' / 'media' / 'dancer.mp4'
PKL_SHAPES = {'pred_cam': (3,), 'orig_cam': (4,), 'verts': (6890, 3), 'pose': (72,), 'betas': (10,),
              'joints3d': (49, 3), 'bboxes': (4,), 'frame_ids': (), 'cam_t': (3,), 'kp2d_px': (49, 2)}


def _synthetic_frames(num: int = 4, width: int = 160, height: int = 120) -> list[np.ndarray]:
    """Two figure-like blobs (head + body) walking towards each other over a textured floor."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(num):
        img = (rng.integers(60, 90, (height, width, 3))).astype(np.uint8)
        for x0, colour in ((20 + 6 * t, (200, 80, 60)), (110 - 6 * t, (60, 90, 200))):
            img[30:95, x0:x0 + 22] = colour
            img[14:30, x0 + 6:x0 + 16] = (230, 190, 160)
        frames.append(img)
    return frames


def _anno(num: int, width: int = 160, height: int = 120) -> list[dict]:
    tracklets = []
    for idx, start, step in ((1, 20, 6), (2, 110, -6)):
        frames = []
        for t in range(num):
            x0 = start + step * t
            frames.append({'frame_id': t, 'rect': {'tl': {'x': (x0 - 4) / width, 'y': 10 / height},
                                                    'br': {'x': (x0 + 26) / width, 'y': 100 / height}}})
        tracklets.append({'idx': idx, 'frames': frames})
    return tracklets


@pytest.fixture(scope='module')
def synthetic_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp('clip')
    frames = _synthetic_frames()
    with VideoWriter(root / 'walk.mp4', fps=10) as writer:
        for f in frames:
            writer.write(f)
    folder = root / 'walk_frames'
    for i, f in enumerate(frames):
        write_png(folder / f'frame{i + 1}.png', f)
    (root / 'anno.json').write_text(json.dumps(_anno(len(frames))))
    return root


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    torch.manual_seed(0)
    status = demo.main(argv, model_factory=FakePyMAF, faces=FACES)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _check_pkl(path: Path, num_people: int, num_frames: int) -> dict:
    with open(path, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == num_people
    for person in results.values():
        assert person['joints2d'] is None
        n = len(person['frame_ids'])
        assert n == num_frames
        for key, shape in PKL_SHAPES.items():
            assert person[key].shape == (n,) + shape, key
            assert np.all(np.isfinite(person[key])), key
    return results


def _project(verts: np.ndarray, cam_t: np.ndarray, width: int, height: int) -> np.ndarray:
    points = verts + cam_t
    return 5000.0 * points[:, :2] / points[:, 2:] + np.array([width / 2, height / 2])


def test_video_with_anno_tracks_end_to_end(synthetic_clip, tmp_path, capsys):
    out = tmp_path / 'out'
    status, stdout, err = _run(['--vid_file', str(synthetic_clip / 'walk.mp4'), '--use_gt', '--anno_file',
                                str(synthetic_clip / 'anno.json'), '--output_folder', str(out), '--empty_bg',
                                '--save_obj', '--model_batch_size', '3'], capsys)
    assert status == 0, err
    res_dir = out / 'walk'
    results = _check_pkl(res_dir / 'output.pkl', num_people=2, num_frames=4)
    npz = np.load(res_dir / 'output.npz')
    assert npz['verts'].shape == (8, 6890, 3) and sorted(set(npz['person_ids'])) == [1, 2]
    assert (res_dir / 'walk_result.mp4').stat().st_size > 0
    assert len(list((res_dir / 'meshes' / '0002').glob('*.obj'))) == 4
    assert 'regression' in stdout and 'frames/s' in stdout
    assert not [p for p in out.iterdir() if p.name.startswith('.')]  # temporary folder removed

    # The black-background panel shows the meshes where the full-image camera puts them.
    frame = np.asarray(__import__('cv2').imread(str(res_dir / 'walk_output' / '000002.png')))[..., ::-1]
    assert frame.shape == (120, 320, 3)
    mask = frame[:, 160:].max(axis=2) > 0
    px = np.concatenate([_project(p['verts'][2], p['cam_t'][2], 160, 120) for p in results.values()])
    inside = (px[:, 0] >= 0) & (px[:, 0] < 160) & (px[:, 1] >= 0) & (px[:, 1] < 120)
    assert inside.mean() > 0.5
    cols = np.clip(px[inside, 0].astype(int), 0, 159)
    rows = np.clip(px[inside, 1].astype(int), 0, 119)
    # Projected vertices fall on the silhouette (one pixel of tolerance for the sub-pixel outline).
    assert binary_dilation(mask)[rows, cols].mean() > 0.98
    ys, xs = np.nonzero(mask)
    assert xs.min() >= px[inside, 0].min() - 2 and xs.max() <= px[inside, 0].max() + 2
    assert ys.min() >= px[inside, 1].min() - 2 and ys.max() <= px[inside, 1].max() + 2
    # With tx = ty = 0 the body origin projects onto the centre of its box.
    for person in results.values():
        centre = _project(np.zeros((1, 3)), person['cam_t'][2], 160, 120)[0]
        np.testing.assert_allclose(centre, person['bboxes'][2, :2], atol=1e-3)
        np.testing.assert_allclose(person['kp2d_px'][2], np.repeat(person['bboxes'][2:3, :2], 49, 0), atol=1e-3)


def test_folder_and_image_inputs(synthetic_clip, tmp_path, capsys):
    out = tmp_path / 'out'
    status, _, err = _run(['--image_folder', str(synthetic_clip / 'walk_frames'), '--use_gt', '--anno_file',
                           str(synthetic_clip / 'anno.json'), '--output_folder', str(out), '--no_render',
                           '--max_frames', '2'], capsys)
    assert status == 0, err
    _check_pkl(out / 'walk_frames' / 'output.pkl', num_people=2, num_frames=2)
    assert not (out / 'walk_frames' / 'walk_frames_result.mp4').exists()
    npz = np.load(out / 'walk_frames' / 'output.npz')
    assert list(npz['frame_names']) == ['frame1', 'frame2']

    image = synthetic_clip / 'walk_frames' / 'frame3.png'
    status, stdout, err = _run(['--img_file', str(image), '--output_folder', str(out), '--sideview'], capsys)
    assert status == 0, err
    assert 'nobody found in frame3: no mesh' in stdout  # no one in the toy image: no mesh over nobody
    status, stdout, err = _run(['--img_file', str(image), '--output_folder', str(out), '--sideview',
                                '--single_crop'], capsys)
    assert status == 0, err  # the original's image demo: the whole image is one crop
    results = _check_pkl(out / 'frame3' / 'output.pkl', num_people=1, num_frames=1)
    np.testing.assert_allclose(results[1]['bboxes'][0], [80, 60, 160, 160])
    overlay = np.asarray(__import__('cv2').imread(str(out / 'frame3' / 'frame3_pymaf.png')))
    assert overlay.shape == (120, 320, 3)


@pytest.mark.skipif(not DANCER.exists(), reason='shared media not present on this machine')
def test_dancer_frames_with_default_detector(tmp_path, capsys):
    out = tmp_path / 'out'
    status, stdout, err = _run(['--vid_file', str(DANCER), '--max_frames', '3', '--output_folder', str(out),
                                '--render_ratio', '0.125', '--smooth'], capsys)
    assert status == 0, err
    results = _check_pkl(out / 'dancer' / 'output.pkl', num_people=1, num_frames=3)
    box = results[1]['bboxes'][0]
    assert 700 < box[0] < 1200 and 300 < box[2] < 800  # the dancer, near the middle of the 1920x1080 frame
    assert (out / 'dancer' / 'dancer_output' / '000002.png').exists()


def test_nobody_found_finishes_cleanly(tmp_path, capsys):
    with VideoWriter(tmp_path / 'empty.mp4', fps=5) as writer:
        for _ in range(3):
            writer.write(np.full((64, 96, 3), 40, np.uint8))
    status, stdout, err = _run(['--vid_file', str(tmp_path / 'empty.mp4'), '--output_folder',
                                str(tmp_path / 'out')], capsys)
    assert status == 0, err
    assert 'nobody was found' in stdout
    assert not (tmp_path / 'out' / 'empty' / 'empty_result.mp4').exists()


def test_bad_inputs_exit_with_one_line(synthetic_clip, tmp_path, capsys):
    out = tmp_path / 'out'
    cases = [
        (['--vid_file', str(tmp_path / 'missing.mp4')], 'input not found'),
        (['--img_file', str(tmp_path / 'missing.png')], 'not found'),
        (['--vid_file', str(synthetic_clip / 'anno.json')], 'cannot read video'),
        (['--image_folder', str(tmp_path)], 'no images'),
        (['--vid_file', 'a.mp4', '--img_file', 'b.png'], 'exactly one input'),
        (['--vid_file', str(synthetic_clip / 'walk.mp4'), '--tracking_method', 'pose'], 'STAF'),
        (['--vid_file', str(synthetic_clip / 'walk.mp4'), '--detector', 'maskrcnn'], 'maskrcnn'),
        (['--vid_file', str(synthetic_clip / 'walk.mp4'), '--use_gt'], '--anno_file'),
        (['--vid_file', str(synthetic_clip / 'walk.mp4'), '--checkpoint', str(tmp_path / 'no.pt')],
         'checkpoint not found'),
    ]
    for argv, expected in cases:
        status, _, err = _run(argv + ['--output_folder', str(out)], capsys)
        assert status == 1, argv
        assert expected in err and err.startswith('error:') and err.count('\n') == 1, (argv, err)


def test_wrong_checkpoint_lists_mismatch_and_keeps_outputs(synthetic_clip, tmp_path, capsys):
    out = tmp_path / 'out'
    (out / 'walk').mkdir(parents=True)
    (out / 'walk' / 'output.pkl').write_bytes(b'previous results')
    ckpt = tmp_path / 'other.pt'
    torch.save({'model': {'head.weight': torch.zeros(3, 5), 'head.fc.bias': torch.zeros(2)}}, ckpt)
    status, _, err = _run(['--vid_file', str(synthetic_clip / 'walk.mp4'), '--use_gt', '--anno_file',
                           str(synthetic_clip / 'anno.json'), '--checkpoint', str(ckpt), '--output_folder',
                           str(out)], capsys)
    assert status == 1
    assert 'not a PyMAF checkpoint' in err and 'missing: head.bias' in err and 'unexpected: head.fc.bias' in err
    assert 'head.weight checkpoint (3, 5) vs model (3, 3)' in err
    assert (out / 'walk' / 'output.pkl').read_bytes() == b'previous results'
    assert sorted(p.name for p in out.iterdir()) == ['walk']


def test_recon_result_file_renders_saved_results(synthetic_clip, tmp_path, capsys):
    clip = ['--vid_file', str(synthetic_clip / 'walk.mp4')]
    status, _, err = _run(clip + ['--use_gt', '--anno_file', str(synthetic_clip / 'anno.json'), '--output_folder',
                                  str(tmp_path / 'first'), '--no_render'], capsys)
    assert status == 0, err
    saved = tmp_path / 'first' / 'walk' / 'output.pkl'
    with open(saved, 'rb') as f:
        results = pickle.load(f)
    # A result file of the original demo has no cam_t: the camera comes from orig_cam then.
    for person in results.values():
        del person['cam_t'], person['kp2d_px']
    original = tmp_path / 'original.pkl'
    original.write_bytes(pickle.dumps(results))
    status, stdout, err = _run(clip + ['--recon_result_file', str(original), '--output_folder',
                                       str(tmp_path / 'second'), '--empty_bg', '--smooth'], capsys)
    assert status == 0, err
    assert '--smooth is ignored with --recon_result_file' in stdout
    second = tmp_path / 'second' / 'walk'
    assert (second / 'walk_result.mp4').stat().st_size > 0 and not (second / 'output.pkl').exists()
    frame = np.asarray(__import__('cv2').imread(str(second / 'walk_output' / '000001.png')))
    mask = frame[:, 160:].max(axis=2) > 0
    for person in results.values():
        cx, cy = person['bboxes'][1, :2]
        assert mask[int(round(cy)), int(round(cx))]  # a mesh covers each person's box centre
