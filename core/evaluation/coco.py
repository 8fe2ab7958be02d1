"""COCO val2014 keypoint evaluation with ground-truth boxes (see docs/evaluation.md): each person crop is
regressed; the 24 ground-truth joints of the neutral SMPL mesh are reordered to COCO's 17, projected with
the crop's perspective camera (f = 5000 px, t = [tx, ty, 2f / (224 s)]) into crop pixels, mapped back to the
image with the box, and scored by COCOeval with every score set to 1.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core import constants
from core.evaluation.evaluator import finish_guarded, guarded_loader
from datasets.coco_keypoint_dataset import STAT_NAMES, COCOKeypointDataset
from utils.transforms import transform_preds

# A predictor maps (batch dict, device) to (B, 17, 2) COCO-order keypoints in 224-crop pixels.
Predictor = Callable[[dict, torch.device], torch.Tensor]


def model_predictor(model, smpl_neutral: torch.nn.Module) -> Predictor:
    """The original's keypoints: neutral-SMPL GT joints, COCO order, perspective-projected into the crop.

    ``model`` is an inference backend (`core.inference.backends.make_backend`) or a network (run in PyTorch
    fp32 on the evaluation device).
    """
    from core.inference.backends import as_backend

    focal = constants.FOCAL_LENGTH
    half = constants.IMG_RES / 2

    @torch.no_grad()
    def predict(batch: dict, device: torch.device) -> torch.Tensor:
        pred = {k: v.to(device) for k, v in as_backend(model, device)(batch['img']).items()}
        rotmat, betas, cam = pred['rotmat'], pred['pred_shape'], pred['pred_cam']
        joints = smpl_neutral(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                              pose2rot=False).joints[:, -24:][:, constants.J24_TO_JCOCO]
        cam_t = torch.stack([cam[:, 1], cam[:, 2], 2 * focal / (constants.IMG_RES * cam[:, 0] + 1e-9)], dim=-1)
        points = joints + cam_t[:, None]
        return focal * points[..., :2] / points[..., 2:] + half

    return predict


def run_coco_evaluation(dataset: COCOKeypointDataset, predictor: Predictor, device: torch.device,
                        result_json: str, batch_size: int = 32, num_workers: int = 0,
                        bad_sample_policy: str = 'skip') -> dict:
    """Predict every sample, map the keypoints back to the images and score them with COCOeval.

    Unusable samples are skipped and counted, or stop the run, by ``bad_sample_policy`` (as in eval.py).

    Returns:
        dict of the ten COCO statistics (fractions) and ``skipped_samples``.
    """
    from tqdm import tqdm

    loader, bad = guarded_loader(dataset, batch_size, bad_sample_policy, num_workers=num_workers)
    all_kp, names = [], []
    res = [constants.IMG_RES, constants.IMG_RES]
    for batch in tqdm(loader, desc='eval coco'):
        for message in batch['bad_samples']:
            bad.report(message)
        if 'img' not in batch:
            continue
        kp_crop = predictor(batch, device).cpu().numpy()
        for kp, center, scale in zip(kp_crop, batch['center'].numpy(), batch['scale'].numpy()):
            all_kp.append(transform_preds(kp, center, np.array([scale, scale]), res))
        names.extend(batch['imgname'])
    finish_guarded(bad, {}, len(names))
    stats = dict(dataset.evaluate(np.stack(all_kp), names, result_json))
    stats['skipped_samples'] = bad.skipped
    return stats


def format_table(stats: dict) -> str:
    """The original's markdown summary table, values as fractions to 3 decimals."""
    header = '| Arch | ' + ' | '.join(STAT_NAMES) + ' |'
    rule = '|---' * (len(STAT_NAMES) + 1) + '|'
    row = '| pymaf_net | ' + ' | '.join(f'{stats[k]:.3f}' for k in STAT_NAMES) + ' |'
    return '\n'.join([header, rule, row])
