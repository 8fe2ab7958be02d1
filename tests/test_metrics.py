"""Metric functions against hand-computed cases, and the crop/keypoint transforms they rely on."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from core.evaluation import metrics
from utils import imutils, transforms


def _random_joints(batch: int, joints: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, joints, 3)))


def test_mpjpe_known_offset():
    gt = _random_joints(4, 14, 0)
    offset = torch.tensor([0.03, -0.04, 0.0], dtype=gt.dtype)  # 5 cm exactly
    err = metrics.mpjpe(gt + offset, gt)
    assert torch.allclose(err, torch.full((4,), 0.05, dtype=gt.dtype))


def test_mpjpe_hand_computed():
    gt = torch.zeros(1, 2, 3)
    pred = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 3.0, 4.0]]])
    assert torch.allclose(metrics.mpjpe(pred, gt), torch.tensor([3.0]))  # (1 + 5) / 2


def test_pa_mpjpe_is_zero_under_similarity_transform():
    gt = _random_joints(5, 14, 1)
    rot = torch.from_numpy(Rotation.random(5, random_state=2).as_matrix())
    scale = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1], dtype=gt.dtype)[:, None, None]
    shift = _random_joints(5, 1, 3)
    pred = scale * gt @ rot.transpose(1, 2) + shift
    assert metrics.mpjpe(pred, gt).min() > 0.1
    assert torch.allclose(metrics.pa_mpjpe(pred, gt), torch.zeros(5, dtype=gt.dtype), atol=1e-9)


def test_pa_mpjpe_does_not_use_reflections():
    gt = _random_joints(1, 20, 4)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=gt.dtype)
    assert metrics.pa_mpjpe(mirrored, gt).item() > 0.05


def test_pa_mpjpe_not_above_mpjpe():
    gt = _random_joints(8, 14, 5)
    pred = gt + 0.1 * _random_joints(8, 14, 6)
    assert torch.all(metrics.pa_mpjpe(pred, gt) <= metrics.mpjpe(pred, gt) + 1e-12)


def test_pck_and_auc():
    gt = torch.zeros(1, 4, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[0, :, 0] = torch.tensor([0.0, 0.05, 0.1, 0.2])
    assert metrics.pck(pred, gt).item() == 0.75
    # Distances 0, 50, 100, 200 mm on the 31 thresholds 0..150 mm: joint 0 counts at 30 thresholds
    # (not at 0 mm), joint 1 at 20 (55..150), joint 2 at 10 (105..150), joint 3 never.
    assert abs(metrics.auc(pred, gt).item() - (30 + 20 + 10) / (31 * 4)) < 1e-12


def test_running_average_is_exact():
    avg = metrics.RunningAverage()
    avg.update(torch.tensor([1.0, 2.0, 3.0]))
    avg.update(np.array([10.0]))
    assert avg.count == 4 and avg.mean == 4.0


def test_segmentation_score_hand_computed():
    gt = np.array([[0, 0, 1, 1], [255, 1, 1, 0]])
    pred = np.array([[0, 1, 1, 1], [1, 1, 0, 0]])
    score = metrics.SegmentationScore(num_classes=2, ignore_index=255)
    score.update(pred, gt)
    assert score.valid == 7 and score.correct == 5
    # class 0: tp 2, fp 1, fn 1 -> 4/6; class 1: tp 3, fp 1, fn 1 -> 6/8
    assert abs(score.mean_f1 - (4 / 6 + 6 / 8) / 2) < 1e-12


def test_transform_round_trip_and_centre():
    center, scale, res = np.array([300.0, 200.0]), 1.5, [224, 224]
    assert tuple(imutils.transform(center + 1, center, scale, res)) == (113, 113)
    pt = np.array([250.0, 180.0])
    back = imutils.transform(imutils.transform(pt, center, scale, res), center, scale, res, invert=True)
    assert np.all(np.abs(back - pt) <= 2)


def test_crop_places_box_content_at_crop_centre():
    img = np.zeros((400, 600, 3), dtype=np.uint8)
    img[190:211, 290:311] = 255  # white square centred at (300, 200)
    out = imutils.crop(img, np.array([300.0, 200.0]), 1.0, [224, 224])
    assert out.shape == (224, 224, 3)
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(ys.mean() - 111.5) < 2 and abs(xs.mean() - 111.5) < 2
    rotated = imutils.crop(img, np.array([300.0, 200.0]), 1.0, [224, 224], rot=30)
    assert rotated.shape == (224, 224, 3) and rotated[112, 112, 0] > 128


def test_flip_is_an_involution():
    kp = np.random.default_rng(0).normal(size=(49, 3))
    assert np.allclose(imutils.flip_kp(imutils.flip_kp(kp)), kp)
    pose = np.random.default_rng(1).normal(size=72)
    assert np.allclose(imutils.flip_pose(imutils.flip_pose(pose)), pose)


def test_rot_aa_rotates_about_camera_z():
    out = imutils.rot_aa(np.zeros(3), 90)
    assert np.allclose(out, [0.0, 0.0, -np.pi / 2])


def test_transform_preds_inverts_the_crop():
    center, scale = np.array([320.0, 240.0]), 1.2
    crop_px = np.array([[112.0, 112.0], [0.0, 0.0], [224.0, 112.0]])
    orig = transforms.transform_preds(crop_px, center, np.array([scale, scale]), [224, 224])
    assert np.allclose(orig[0], center)
    assert np.allclose(orig[1], center - 100 * scale)
    assert np.allclose(orig[2], [center[0] + 100 * scale, center[1]])


def test_crop_transform_and_coco_inverse_agree():
    rng = np.random.default_rng(3)
    center, scale = np.array([260.0, 310.0]), 1.7
    for pt in rng.uniform(150, 400, size=(20, 2)):
        crop_1based = imutils.transform(pt + 1, center, scale, [224, 224])
        back = transforms.transform_preds((crop_1based - 1)[None].astype(float), center, np.array([scale, scale]),
                                          [224, 224])[0]
        assert np.all(np.abs(back - pt) <= 200 * scale / 224 + 1e-9)  # within one crop pixel


def test_uncrop_inverts_crop_placement():
    mask = np.zeros((224, 224), np.uint8)
    mask[100:124, 100:124] = 1  # a square at the crop centre
    center, scale = np.array([150.0, 120.0]), 0.8
    full = imutils.uncrop(mask, center, scale, (240, 320))
    ys, xs = np.nonzero(full)
    assert full.shape == (240, 320)
    assert abs(xs.mean() - center[0]) < 1.5 and abs(ys.mean() - center[1]) < 1.5
    assert abs(len(xs) - 24 * 24 * (160 / 224) ** 2) < 40
