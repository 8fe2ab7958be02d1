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
import sys

from utils.openmp import prefer_passive_wait

prefer_passive_wait()  # before torch starts OpenMP: its threads then sleep instead of spinning (docs/speed.md)

from core.evaluation.coco import Predictor, format_table, model_predictor, run_coco_evaluation  # noqa: E402
from datasets.coco_keypoint_dataset import COCOKeypointDataset  # noqa: E402
from eval import add_model_run_args, check_model_run_args  # noqa: E402
from utils import cli  # noqa: E402

logger = logging.getLogger('eval_coco')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def main(args: argparse.Namespace, predictor: Predictor | None = None) -> dict:
    """Evaluate; ``predictor`` replaces the model (tests feed known keypoints through the same pipeline)."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    device = check_model_run_args(args)
    cli.check_writable_dir(args.output_dir, '--output_dir')
    dataset = COCOKeypointDataset(npz_path=args.dataset_file, img_dir=args.image_dir,
                                  annotation_file=args.annotation_file)
    cli.check_input_file(dataset.annotation_file, '--annotation_file', 'COCO annotation file')
    dataset.coco  # noqa: B018 (read the ground truth now: a broken file fails before any regression)
    if predictor is None:
        from core.evaluation.protocol import load_eval_assets, load_model
        from core.inference.backends import make_backend

        model = make_backend(load_model(args.checkpoint, device, cfg_file=args.cfg_file, misc=args.misc), device,
                             args.backend, args.precision, checkpoint=args.checkpoint)
        smpl_models, _ = load_eval_assets(device)
        predictor = model_predictor(model, smpl_models['neutral'])
    result_json = os.path.join(args.output_dir, 'results',
                               f'keypoints_val2014_results_{checkpoint_name(args.checkpoint)}.json')
    stats = run_coco_evaluation(dataset, predictor, device, result_json, args.batch_size, args.num_workers,
                                args.bad_sample_policy)
    print(format_table(stats))
    if stats['skipped_samples']:
        print(f'skipped samples: {stats["skipped_samples"]} (unusable; see the warnings above)')
    print(f'pymaf_net: {args.checkpoint}, coco')
    print(f'detections written to {result_json}')
    return stats


if __name__ == '__main__':
    sys.exit(cli.run_main(lambda: main(parse_args()), prog='eval_coco.py'))
