"""eval_coco.py end to end on a small synthetic COCO-format set: perfect keypoints give AP 1.0."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import torch

import eval_coco
from core import constants
from datasets.coco_keypoint_dataset import image_id_from_name

IMG_W, IMG_H = 480, 400


def _write_coco_set(root: str, num_people: int = 4, seed: int = 0) -> tuple[str, str]:
    """Images, a COCO keypoint GT json and the matching SPIN-format npz; returns (npz, json) paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, 'val2014'), exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images, annotations, imgnames, centers, scales, parts = [], [], [], [], [], []
    for i in range(num_people):
        image_id = 1000 + i
        name = f'val2014/COCO_val2014_{image_id:012d}.jpg'
        cv2.imwrite(os.path.join(root, name), rng.integers(0, 255, size=(IMG_H, IMG_W, 3), dtype=np.uint8))
        lo = rng.uniform([40, 30], [120, 80])
        size = rng.uniform([220, 280], [320, 310])
        kp = np.concatenate([lo + rng.uniform(size=(17, 2)) * size, np.full((17, 1), 2.0)], axis=1)
        images.append({'id': image_id, 'file_name': os.path.basename(name), 'width': IMG_W, 'height': IMG_H})
        annotations.append({'id': i + 1, 'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
                            'keypoints': kp.reshape(-1).tolist(), 'num_keypoints': 17,
                            'bbox': [*lo.tolist(), *size.tolist()], 'area': float(size.prod())})
        part = np.zeros((24, 3))
        part[constants.J24_TO_JCOCO] = np.concatenate([kp[:, :2], np.ones((17, 1))], axis=1)
        imgnames.append(name)
        centers.append(lo + size / 2)
        scales.append(1.2 * size.max() / 200)
        parts.append(part)
    categories = [{'id': 1, 'name': 'person', 'supercategory': 'person',
                   'keypoints': [f'k{j}' for j in range(17)], 'skeleton': []}]
    gt_json = os.path.join(root, 'annotations', 'person_keypoints_val2014.json')
    with open(gt_json, 'w') as f:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
    npz = os.path.join(root, 'coco_2014_val.npz')
    np.savez(npz, imgname=np.array(imgnames), center=np.array(centers), scale=np.array(scales), part=np.array(parts))
    return npz, gt_json


def perfect_predictor(batch: dict, device: torch.device) -> torch.Tensor:
    """The ground-truth keypoints of each crop, as 0-based crop pixels (a stand-in for the model)."""
    kp_norm = batch['keypoints'][:, 25:][:, constants.J24_TO_JCOCO, :2]
    return (kp_norm + 1) * constants.IMG_RES / 2 - 1  # the reader's labels are 1-based pixels


def shifted_predictor(batch: dict, device: torch.device) -> torch.Tensor:
    return perfect_predictor(batch, device) + 25.0


def _args(tmp_path, npz):
    return eval_coco.parse_args(['--dataset_file', npz, '--image_dir', str(tmp_path), '--device', 'cpu',
                                 '--num_workers', '0', '--batch_size', '3', '--output_dir', str(tmp_path / 'out')])


def test_perfect_keypoints_give_ap_one(tmp_path, capsys):
    npz, _ = _write_coco_set(str(tmp_path))
    stats = eval_coco.main(_args(tmp_path, npz), predictor=perfect_predictor)
    assert stats['AP'] == 1.0 and stats['AR'] == 1.0
    result_json = tmp_path / 'out' / 'results' / 'keypoints_val2014_results_spin_model.json'
    detections = json.loads(result_json.read_text())
    assert len(detections) == 4 and detections[0]['image_id'] == 1000 and detections[0]['score'] == 1.0
    assert '| pymaf_net | 1.000' in capsys.readouterr().out


def test_wrong_keypoints_score_lower(tmp_path):
    npz, _ = _write_coco_set(str(tmp_path))
    stats = eval_coco.main(_args(tmp_path, npz), predictor=shifted_predictor)
    assert stats['AP'] < 0.5


def test_image_id_and_checkpoint_name():
    assert image_id_from_name('val2014/COCO_val2014_000000019667.jpg') == 19667
    assert eval_coco.checkpoint_name('data/pretrained_model/PyMAF_model_checkpoint.pt') == 'spin_model'
    assert eval_coco.checkpoint_name('logs/pymaf_res50/pymaf_res50_as/checkpoints/model_best.pt') == 'res50_model_best'
