"""COCO val2014 keypoint AP of a PyMAF checkpoint, with ground-truth boxes, through pycocotools.

    python eval_coco.py --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt
    python eval_coco.py --checkpoint model.pt --device cpu --output_dir output/coco

Each person crop (boxes from SPIN's coco_2014_val.npz) is regressed; the 24 ground-truth joints of the
neutral SMPL mesh are reordered to COCO's 17, projected with the crop's perspective camera
(f = 5000 px, t = [tx, ty, 2f / (224 s)]) into crop pixels, mapped back to the image with the box, and
scored by COCOeval with every score set to 1 (the original's protocol; the paper reports AP 24.6).
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable

import numpy as np
import torch

from core import constants
from datasets.coco_keypoint_dataset import STAT_NAMES, COCOKeypointDataset
from eval import add_model_run_args
from utils.transforms import transform_preds

logger = logging.getLogger('eval_coco')

# A predictor maps (batch dict, device) to (B, 17, 2) COCO-order keypoints in 224-crop pixels.
Predictor = Callable[[dict, torch.device], torch.Tensor]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None, help='checkpoint (.pt) holding the model state under "model"')
    parser.add_argument('--dataset_file', default=None, help='annotation npz overriding coco_2014_val.npz')
    parser.add_argument('--image_dir', default=None, help='COCO root overriding the one from core.path_config')
    parser.add_argument('--annotation_file', default=None,
                        help='COCO GT json (default: <COCO root>/annotations/person_keypoints_val2014.json)')
    parser.add_argument('--batch_size', type=int, default=32, help='images per batch')
    parser.add_argument('--output_dir', default='notebooks/output', help='results JSON goes to <output_dir>/results/')
    add_model_run_args(parser)
    return parser.parse_args(argv)


def checkpoint_name(checkpoint: str | None) -> str:
    """The original's result-file tag: ``spin_model`` for the released model, else ``<run>_<stem>``."""
    if not checkpoint or 'model_checkpoint.pt' in checkpoint:
        return 'spin_model'
    parts = os.path.normpath(checkpoint).split(os.sep)
    run = parts[2].split('_')[1] if len(parts) > 2 and '_' in parts[2] else 'model'
    return f'{run}_{os.path.splitext(os.path.basename(checkpoint))[0]}'


def model_predictor(model: torch.nn.Module, smpl_neutral: torch.nn.Module) -> Predictor:
    """The original's keypoints: neutral-SMPL GT joints, COCO order, perspective-projected into the crop."""
    from models.pymaf_net import without_iuv

    focal = constants.FOCAL_LENGTH
    half = constants.IMG_RES / 2
    forward_kwargs = without_iuv(model)

    @torch.no_grad()
    def predict(batch: dict, device: torch.device) -> torch.Tensor:
        preds_dict, _ = model(batch['img'].to(device), **forward_kwargs)
        pred = preds_dict['smpl_out'][-1]
        rotmat, betas, cam = pred['rotmat'], pred['pred_shape'], pred['pred_cam']
        joints = smpl_neutral(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                              pose2rot=False).joints[:, -24:][:, constants.J24_TO_JCOCO]
        cam_t = torch.stack([cam[:, 1], cam[:, 2], 2 * focal / (constants.IMG_RES * cam[:, 0] + 1e-9)], dim=-1)
        points = joints + cam_t[:, None]
        return focal * points[..., :2] / points[..., 2:] + half

    return predict


def run_coco_evaluation(dataset: COCOKeypointDataset, predictor: Predictor, device: torch.device,
                        result_json: str, batch_size: int = 32, num_workers: int = 0) -> dict:
    """Predict every sample, map the keypoints back to the images and score them with COCOeval.

    Returns:
        dict of the ten COCO statistics (fractions).
    """
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    all_kp, names = [], []
    res = [constants.IMG_RES, constants.IMG_RES]
    for batch in tqdm(loader, desc='eval coco'):
        kp_crop = predictor(batch, device).cpu().numpy()
        for kp, center, scale in zip(kp_crop, batch['center'].numpy(), batch['scale'].numpy()):
            all_kp.append(transform_preds(kp, center, np.array([scale, scale]), res))
        names.extend(batch['imgname'])
    return dict(dataset.evaluate(np.stack(all_kp), names, result_json))


def format_table(stats: dict) -> str:
    """The original's markdown summary table, values as fractions to 3 decimals."""
    header = '| Arch | ' + ' | '.join(STAT_NAMES) + ' |'
    rule = '|---' * (len(STAT_NAMES) + 1) + '|'
    row = '| pymaf_net | ' + ' | '.join(f'{stats[k]:.3f}' for k in STAT_NAMES) + ' |'
    return '\n'.join([header, rule, row])


def main(args: argparse.Namespace, predictor: Predictor | None = None) -> dict:
    """Evaluate; ``predictor`` replaces the model (tests feed known keypoints through the same pipeline)."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    device = torch.device(args.device)
    dataset = COCOKeypointDataset(npz_path=args.dataset_file, img_dir=args.image_dir,
                                  annotation_file=args.annotation_file)
    if predictor is None:
        from eval import build_model, load_eval_assets

        model = build_model(args, device)
        smpl_models, _ = load_eval_assets(device)
        predictor = model_predictor(model, smpl_models['neutral'])
    result_json = os.path.join(args.output_dir, 'results',
                               f'keypoints_val2014_results_{checkpoint_name(args.checkpoint)}.json')
    stats = run_coco_evaluation(dataset, predictor, device, result_json, args.batch_size, args.num_workers)
    print(format_table(stats))
    print(f'pymaf_net: {args.checkpoint}, coco')
    print(f'detections written to {result_json}')
    return stats


if __name__ == '__main__':
    main(parse_args())
