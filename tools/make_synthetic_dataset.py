"""Render a synthetic SPIN-format dataset (images + npz with full ground truth) for tests and smoke runs.

    python tools/make_synthetic_dataset.py --num_samples 300 --seed 0          # the 'synthetic' test set
    python tools/make_synthetic_dataset.py --split train --num_samples 2000 --seed 1
    python eval.py --dataset synthetic --checkpoint model.pt
    python tools/make_synthetic_dataset.py --out_dir /tmp/synth --num_samples 50   # a standalone folder

Without --out_dir, images go to images_<split>/ under the 'synthetic' dataset root of core.path_config and
the annotation file to its registered name (dataset_extras/synthetic_<split>.npz), so `--dataset synthetic` finds them.

Bodies come from the official SMPL files when present, otherwise from the project's stand-in body model
(see datasets/synthetic.py for what is drawn and which fields are written). Equal seeds give equal files.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out_dir', default=None,
                        help='standalone output folder (images + npz); default: the registered synthetic dataset')
    parser.add_argument('--split', default='test', choices=['test', 'train'],
                        help='which registered file to write when --out_dir is not given')
    parser.add_argument('--num_samples', type=int, default=300, help='number of images (one person each)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--img_width', type=int, default=256, help='image width in pixels')
    parser.add_argument('--img_height', type=int, default=256, help='image height in pixels')
    parser.add_argument('--npz_name', default='synthetic.npz', help='annotation file name inside --out_dir')
    parser.add_argument('--save_masks', action='store_true', help='also write body masks (maskname field)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (1 is fastest for these small renders; more threads contend)')
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> str:
    import torch

    from datasets.synthetic import generate_dataset

    torch.set_num_threads(args.threads)
    out_dir, npz_path, image_subdir = args.out_dir, None, 'images'
    if out_dir is None:
        from core import path_config

        out_dir = str(path_config.DATASET_FOLDERS['synthetic'])
        npz_path = str(path_config.DATASET_FILES[int(args.split == 'train')]['synthetic'])
        image_subdir = f'images_{args.split}'
    start = time.perf_counter()
    npz_path = generate_dataset(out_dir, num_samples=args.num_samples, seed=args.seed, img_width=args.img_width,
                                img_height=args.img_height, npz_name=args.npz_name, save_masks=args.save_masks,
                                npz_path=npz_path, image_subdir=image_subdir)
    print(f'wrote {args.num_samples} samples to {npz_path} in {time.perf_counter() - start:.1f} s')
    return npz_path


if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(parse_args())
