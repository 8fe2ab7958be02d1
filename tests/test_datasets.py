"""The SPIN-format npz reader on small synthetic files written by the test."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from core import constants
from datasets.base_dataset import BaseDataset

DOT_XY = (150, 90)  # pixel position of the bright dot that GT joint 12 (neck) marks


def _write_dataset(root: str, n: int = 2, with_3d: bool = True) -> str:
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        img = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(img, DOT_XY, 6, (255, 255, 255), -1)
        name = f'images/{i:03d}.jpg'
        cv2.imwrite(os.path.join(root, name), img)
        names.append(name)
    part = np.zeros((n, 24, 3))
    part[:, 12] = [DOT_XY[0], DOT_XY[1], 1]
    arrays = {
        'imgname': np.array(names),
        'center': np.tile([160.0, 120.0], (n, 1)),
        'scale': np.full(n, 1.1),
        'part': part,
        'pose': rng.normal(scale=0.2, size=(n, 72)),
        'shape': rng.normal(size=(n, 10)),
        'gender': np.array(['m', 'f'][:n]),
    }
    if with_3d:
        arrays['S'] = np.concatenate([rng.normal(size=(n, 24, 3)), np.ones((n, 24, 1))], axis=2)
    path = os.path.join(root, 'toy.npz')
    np.savez(path, **arrays)
    return path


def _kp_to_px(kp_norm: torch.Tensor) -> np.ndarray:
    return ((kp_norm[:2].numpy() + 1) * constants.IMG_RES / 2).round().astype(int)


def test_reader_fields_shapes_and_types(tmp_path):
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', is_train=False, npz_path=npz, img_dir=str(tmp_path))
    assert len(ds) == 2
    item = ds[1]
    assert item['img'].shape == (3, 224, 224) and item['img'].dtype == torch.float32
    assert item['keypoints'].shape == (49, 3) and item['pose_3d'].shape == (24, 4)
    assert item['pose'].shape == (72,) and item['betas'].shape == (10,)
    assert item['gender'] == 1 and ds[0]['gender'] == 0
    assert item['has_smpl'] == 1.0 and item['has_pose_3d'] == 1.0
    assert item['imgname'].endswith('images/001.jpg')
    assert tuple(item['orig_shape']) == (240, 320)
    assert item['maskname'] == '' and item['dataset_name'] == 'toy'
    data = np.load(npz)
    assert np.allclose(item['pose'].numpy(), data['pose'][1], atol=1e-6)  # no augmentation in test mode


def test_keypoint_lands_on_image_content(tmp_path):
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', is_train=False, npz_path=npz, img_dir=str(tmp_path))
    item = ds[0]
    x, y = _kp_to_px(item['keypoints'][25 + 12])
    img = item['img'].numpy()
    assert img[:, y, x].mean() > 1.5  # the white dot, far above the grey background after normalisation


@pytest.mark.parametrize('flip,rot', [(1, 0.0), (0, 35.0), (1, -40.0)])
def test_augmented_keypoints_follow_the_augmented_image(tmp_path, monkeypatch, flip, rot):
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', is_train=True, npz_path=npz, img_dir=str(tmp_path))
    monkeypatch.setattr(ds, 'augm_params', lambda: (flip, np.ones(3), rot, 1.0))
    item = ds[0]
    x, y = _kp_to_px(item['keypoints'][25 + 12])  # the neck maps to itself under the flip permutation
    img = item['img'].numpy()
    assert img[:, y - 1:y + 2, x - 1:x + 2].mean() > 1.0
    assert item['is_flipped'] == flip and item['rot_angle'] == np.float32(rot)


def test_flip_mirrors_pose_and_3d_joints(tmp_path, monkeypatch):
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', is_train=True, npz_path=npz, img_dir=str(tmp_path))
    monkeypatch.setattr(ds, 'augm_params', lambda: (1, np.ones(3), 0.0, 1.0))
    flipped = ds[0]
    data = np.load(npz)
    s_gt = data['S'][0]
    assert np.allclose(flipped['pose_3d'][3, 0].item(), -s_gt[2, 0], atol=1e-6)  # left hip <- right hip, x mirrored
    assert np.allclose(flipped['pose'][3:6].numpy(), data['pose'][0][6:9] * [1, -1, -1], atol=1e-6)


def test_training_augmentation_draws_within_the_original_ranges(tmp_path):
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', is_train=True, npz_path=npz, img_dir=str(tmp_path))
    np.random.seed(0)
    draws = [ds.augm_params() for _ in range(2000)]
    rots = np.array([d[2] for d in draws])
    scales = np.array([d[3] for d in draws])
    assert np.abs(rots).max() <= 60 and 0.55 < np.mean(rots == 0) < 0.65
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert 0.45 < np.mean([d[0] for d in draws]) < 0.55


def test_missing_files_give_helpful_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='prepare_3dpw'):
        BaseDataset('3dpw', npz_path=str(tmp_path / 'nope.npz'), img_dir=str(tmp_path))
    npz = _write_dataset(str(tmp_path))
    ds = BaseDataset('toy', npz_path=npz, img_dir=str(tmp_path / 'elsewhere'))
    with pytest.raises(FileNotFoundError, match='000.jpg'):
        ds[0]


def test_dataset_without_smpl_or_3d(tmp_path):
    path = _write_dataset(str(tmp_path), with_3d=False)
    data = dict(np.load(path))
    del data['pose'], data['shape'], data['gender']
    np.savez(path, **data)
    item = BaseDataset('toy', npz_path=path, img_dir=str(tmp_path))[0]
    assert item['has_smpl'] == 0 and item['has_pose_3d'] == 0 and item['gender'] == -1
    assert torch.all(item['pose'] == 0) and torch.all(item['pose_3d'] == 0)
