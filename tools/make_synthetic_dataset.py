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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import cli  # noqa: E402 (after the path set-up for `python tools/make_synthetic_dataset.py`)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def check_args(args: argparse.Namespace) -> None:
    """Counts, sizes and places before any rendering. Raises `utils.cli.UserError`."""
    cli.check_min('--num_samples', args.num_samples)
    cli.check_min('--img_width', args.img_width, 32)
    cli.check_min('--img_height', args.img_height, 32)
    cli.check_min('--threads', args.threads)
    if args.seed < 0:
        raise cli.InputError(f'--seed must be >= 0, got {args.seed}', 'pass a non-negative seed')
    if not args.npz_name or Path(args.npz_name).name != args.npz_name or not args.npz_name.endswith('.npz'):
        raise cli.InputError(f'--npz_name must be a plain file name ending in .npz, got {args.npz_name!r}',
                             'pass e.g. --npz_name synthetic.npz')
    if args.out_dir is not None:
        cli.check_writable_dir(args.out_dir, '--out_dir')


def main(args: argparse.Namespace) -> str:
    """Render the set into a staging folder and move it into place when complete (nothing half-written)."""
    import torch

    from datasets.synthetic import generate_dataset

    check_args(args)
    torch.set_num_threads(args.threads)
    out_dir, npz_path, image_subdir = args.out_dir, None, 'images'
    if out_dir is None:
        from core import path_config

        out_dir = str(path_config.DATASET_FOLDERS['synthetic'])
        npz_path = str(path_config.DATASET_FILES[int(args.split == 'train')]['synthetic'])
        image_subdir = f'images_{args.split}'
        cli.check_writable_dir(out_dir, 'the synthetic dataset root')
        cli.check_writable_file(npz_path, 'the synthetic annotation file')
    start = time.perf_counter()
    with cli.staged_output(out_dir) as stage:
        staged_npz = None if npz_path is None else os.path.join(stage, '.annotation.npz')
        written = generate_dataset(str(stage), num_samples=args.num_samples, seed=args.seed,
                                   img_width=args.img_width, img_height=args.img_height, npz_name=args.npz_name,
                                   save_masks=args.save_masks, npz_path=staged_npz, image_subdir=image_subdir)
        if npz_path is not None:
            Path(npz_path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, npz_path)
        else:
            npz_path = os.path.join(out_dir, args.npz_name)
    print(f'wrote {args.num_samples} samples to {npz_path} in {time.perf_counter() - start:.1f} s')
    return npz_path


if __name__ == '__main__':
    sys.exit(cli.run_main(lambda: main(parse_args()), prog='make_synthetic_dataset'))
