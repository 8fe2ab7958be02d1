"""tools/prepare_3dpw.py on synthetic sequence pickles written in the official 3DPW format."""
from __future__ import annotations

import os
import pickle

import numpy as np
from scipy.spatial.transform import Rotation

from datasets.base_dataset import BaseDataset
from tools import prepare_3dpw

N_FRAMES = 6


def _write_sequence(path: str, name: str, rng: np.random.Generator) -> dict:
    poses = [rng.normal(scale=0.3, size=(N_FRAMES, 72)) for _ in range(2)]
    poses2d = []
    for _ in range(2):
        kp = np.zeros((N_FRAMES, 3, 18))
        kp[:, 0] = rng.uniform(100, 500, size=(N_FRAMES, 18))
        kp[:, 1] = rng.uniform(50, 900, size=(N_FRAMES, 18))
        kp[:, 2] = (rng.uniform(size=(N_FRAMES, 18)) > 0.2).astype(float)
        poses2d.append(kp)
    cam_poses = np.tile(np.eye(4), (N_FRAMES, 1, 1))
    cam_poses[:, :3, :3] = Rotation.random(N_FRAMES, random_state=int(rng.integers(1000))).as_matrix()
    valid = [np.ones(N_FRAMES), np.array([1, 0, 1, 0, 1, 1])]
    seq = {
        'sequence': name, 'poses': poses, 'betas': [rng.normal(size=300), rng.normal(size=300)],
        'poses2d': poses2d, 'cam_poses': cam_poses, 'campose_valid': valid, 'genders': ['m', 'f'],
        'trans': [np.zeros((N_FRAMES, 3))] * 2, 'cam_intrinsics': np.eye(3),
    }
    with open(path, 'wb') as f:
        pickle.dump(seq, f, protocol=2)
    return seq


def test_prepare_3dpw_from_sequence_pickles(tmp_path):
    rng = np.random.default_rng(0)
    seq_dir = tmp_path / 'sequenceFiles' / 'test'
    seq_dir.mkdir(parents=True)
    seqs = [_write_sequence(str(seq_dir / f'{name}.pkl'), name, rng) for name in ('downtown_a_00', 'office_b_01')]
    out = tmp_path / 'out' / '3dpw_test.npz'
    prepare_3dpw.main(prepare_3dpw.parse_args(['--dataset_root', str(tmp_path), '--out_file', str(out)]))
    data = np.load(out)
    assert len(data['imgname']) == 2 * (N_FRAMES + 4)  # person 2 has 4 frames with a valid camera
    assert data['pose'].shape == (20, 72) and data['shape'].shape == (20, 10)
    assert list(data['gender'][:6]) == ['m'] * 6 and list(data['gender'][6:10]) == ['f'] * 4

    seq = seqs[0]
    # Person 1, frame 2 of the first sequence is sample index 6 + 1.
    sample, frame = 7, 2
    assert data['imgname'][sample] == 'imageFiles/downtown_a_00/image_00002.jpg'
    kp = seq['poses2d'][1][frame].T
    vis = kp[kp[:, 2] > 0, :2]
    assert np.allclose(data['center'][sample], (vis.min(0) + vis.max(0)) / 2)
    assert np.isclose(data['scale'][sample], 1.2 * (vis.max(0) - vis.min(0)).max() / 200)
    expected = seq['cam_poses'][frame][:3, :3] @ Rotation.from_rotvec(seq['poses'][1][frame, :3]).as_matrix()
    assert np.allclose(Rotation.from_rotvec(data['pose'][sample, :3]).as_matrix(), expected, atol=1e-9)
    assert np.allclose(data['pose'][sample, 3:], seq['poses'][1][frame, 3:])
    assert np.allclose(data['shape'][sample], seq['betas'][1][:10])


def test_prepared_file_reads_with_base_dataset(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    seq_dir = tmp_path / 'sequenceFiles' / 'test'
    seq_dir.mkdir(parents=True)
    _write_sequence(str(seq_dir / 'walk_00.pkl'), 'walk_00', rng)
    out = str(tmp_path / '3dpw_test.npz')
    prepare_3dpw.main(prepare_3dpw.parse_args(['--dataset_root', str(tmp_path), '--out_file', out]))
    os.makedirs(tmp_path / 'imageFiles' / 'walk_00')
    for frame in range(N_FRAMES):
        frame_path = tmp_path / 'imageFiles' / 'walk_00' / f'image_{frame:05d}.jpg'
        cv2.imwrite(str(frame_path), np.zeros((1080, 640, 3), np.uint8))
    ds = BaseDataset('3dpw', npz_path=out, img_dir=str(tmp_path))
    item = ds[len(ds) - 1]
    assert item['gender'] == 1 and item['has_smpl'] == 1 and item['img'].shape == (3, 224, 224)
