"""The synthetic dataset generator: labels agree with the images, poses are plausible, seeds reproduce."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from datasets import synthetic
from datasets.base_dataset import BaseDataset


@pytest.fixture(scope='module')
def bodies():
    return synthetic.load_body_models()


@pytest.fixture(scope='module')
def generated(tmp_path_factory, bodies):
    out = str(tmp_path_factory.mktemp('synth'))
    npz = synthetic.generate_dataset(out, num_samples=12, seed=3, img_width=192, img_height=160,
                                     save_masks=True, bodies=bodies)
    return out, npz


def test_fields_are_complete(generated):
    _, npz = generated
    data = np.load(npz)
    n = 12
    expected = {'imgname': (n,), 'center': (n, 2), 'scale': (n,), 'part': (n, 24, 3), 'openpose': (n, 25, 3),
                'S': (n, 24, 4), 'pose': (n, 72), 'shape': (n, 10), 'has_smpl': (n,), 'gender': (n,),
                'maskname': (n,), 'cam_t': (n, 3), 'focal_length': (n,)}
    for key, shape in expected.items():
        assert data[key].shape == shape, key
    assert set(data['gender']) <= {'m', 'f'}
    assert np.all(np.isfinite(data['S'])) and np.all(data['scale'] > 0)


def test_projected_joints_fall_on_the_rendered_body(generated):
    out, npz = generated
    data = np.load(npz)
    hits, total = 0, 0
    for i in range(len(data['imgname'])):
        mask = cv2.imread(os.path.join(out, str(data['maskname'][i])), cv2.IMREAD_GRAYSCALE) > 0
        assert mask.mean() > 0.02  # a visible person
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        kp = data['part'][i]
        for x, y, vis in kp:
            if vis > 0:
                total += 1
                hits += bool(mask[int(round(y)), int(round(x))])
        img = cv2.imread(os.path.join(out, str(data['imgname'][i])))
        assert img.shape == (160, 192, 3)
    assert total > 200 and hits / total > 0.95


def test_boxes_contain_the_body(generated):
    out, npz = generated
    data = np.load(npz)
    for i in range(len(data['imgname'])):
        mask = cv2.imread(os.path.join(out, str(data['maskname'][i])), cv2.IMREAD_GRAYSCALE) > 0
        ys, xs = np.nonzero(mask)
        half = data['scale'][i] * 100
        cx, cy = data['center'][i]
        assert xs.min() >= cx - half - 1 and xs.max() <= cx + half + 1
        assert ys.min() >= cy - half - 1 and ys.max() <= cy + half + 1


def test_3d_joints_match_the_2d_joints(generated):
    _, npz = generated
    data = np.load(npz)
    # S is pelvis-centred; adding back the pelvis position is unknown, but depth differences are small
    # compared with the distance, so the 2D layout of S scaled by f / z must match the 2D labels up to a shift.
    for i in range(4):
        s = data['S'][i, :, :3]
        z = data['cam_t'][i, 2]
        approx = data['focal_length'][i] * s[:, :2] / z
        pix = data['part'][i, :, :2]
        residual = (pix - pix.mean(0)) - (approx - approx.mean(0))
        assert np.abs(residual).max() < 0.1 * (pix.max(0) - pix.min(0)).max()


def test_poses_are_inside_the_joint_limits():
    rng = np.random.default_rng(0)
    pose = synthetic.sample_body_pose(rng, 500).reshape(-1, 23, 3)
    euler = Rotation.from_rotvec(pose.reshape(-1, 3)).as_euler('xyz').reshape(-1, 23, 3)
    lo, hi = synthetic.JOINT_LIMITS[..., 0], synthetic.JOINT_LIMITS[..., 1]
    # Euler angles read back uniquely where the middle (y) range stays within +-90 degrees (all but elbows).
    unique = np.all(np.abs(synthetic.JOINT_LIMITS[:, 1]) <= np.pi / 2, axis=1)
    assert unique.sum() == 21
    assert np.all(euler[:, unique] >= lo[unique] - 1e-6) and np.all(euler[:, unique] <= hi[unique] + 1e-6)
    left_elbow = pose[:, 17]  # body joint 18 - 1: flexion about -y only, at most 2.1 rad
    assert np.all(np.linalg.norm(left_elbow, axis=1) < 2.1 + 0.3) and np.all(left_elbow[:, 1] < 0.2)
    knee_flexion = euler[:, 3, 0]  # left knee bends one way only
    assert knee_flexion.min() >= 0 and knee_flexion.max() > 0.8
    # Global orientation: the body's up axis (SMPL +y) points up in the camera frame (-y), within 25 deg.
    up = Rotation.from_rotvec(synthetic.sample_global_orient(rng, 200)).apply([0.0, 1.0, 0.0])
    assert np.all(up[:, 1] < -np.cos(np.deg2rad(25)))


def test_same_seed_same_files_and_reader(tmp_path, bodies):
    a = synthetic.generate_dataset(str(tmp_path / 'a'), num_samples=3, seed=7, img_width=96, img_height=128,
                                   bodies=bodies)
    b = synthetic.generate_dataset(str(tmp_path / 'b'), num_samples=3, seed=7, img_width=96, img_height=128,
                                   bodies=bodies)
    c = synthetic.generate_dataset(str(tmp_path / 'c'), num_samples=3, seed=8, img_width=96, img_height=128,
                                   bodies=bodies)
    da, db, dc = np.load(a), np.load(b), np.load(c)
    for key in da.files:
        assert np.array_equal(da[key], db[key]), key
    assert not np.allclose(da['pose'], dc['pose'])
    for name in da['imgname']:
        ia = cv2.imread(os.path.join(tmp_path, 'a', str(name)))
        ib = cv2.imread(os.path.join(tmp_path, 'b', str(name)))
        assert np.array_equal(ia, ib)
    item = BaseDataset('synthetic', npz_path=a, img_dir=str(tmp_path / 'a'))[0]
    assert item['img'].shape == (3, 224, 224) and item['has_pose_3d'] == 1
    visible = item['keypoints'][25:][item['keypoints'][25:, 2] > 0]
    assert torch.all(visible[:, :2].abs() <= 1.0)
