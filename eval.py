"""Evaluate a PyMAF checkpoint on a 3D benchmark with the original's protocol (see docs/evaluation.md).

    python eval.py --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt --dataset 3dpw
    python eval.py --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt --dataset h36m-p2 --device cpu
    python eval.py --checkpoint model.pt --dataset 3dpw --dataset_file my_3dpw.npz --image_dir /data/3DPW

Predictions are the final loop's rotation matrices and betas re-run through the local neutral SMPL; joints
are the H36M-regressor joints of the mesh, pelvis-centred, 14 LSP joints (17 for MPI-INF-3DHP). MPJPE,
PA-MPJPE (per-sample similarity Procrustes) and PVE (no alignment; gendered ground truth on 3DPW) are
reported in millimetres, PCK/AUC at 150 mm on MPI-INF-3DHP, and written to a JSON file. On LSP the
predicted silhouette and 6-part map are scored against the UP-3D foreground masks and part labels.

A sample that cannot be used (missing image, non-finite annotation) is skipped and counted, or stops the
run, by --bad_sample_policy (the rule training applies with TRAIN.BAD_SAMPLE_POLICY); the results file
records how many were skipped. Mistakes print one ``error:`` line (utils/cli.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from utils.openmp import prefer_passive_wait

prefer_passive_wait()  # before torch starts OpenMP: its threads then sleep instead of spinning (docs/speed.md)

import torch  # noqa: E402

from core.evaluation.evaluator import build_evaluator, run_evaluation  # noqa: E402
from core.evaluation.protocol import (  # noqa: E402
    DATASETS,
    eval_data_name,
    format_table,
    load_eval_assets,
    load_model,
    model_record,
    protocol_description,
)
from core.inference.backends import add_backend_args, check_backend, make_backend  # noqa: E402
from utils import cli  # noqa: E402

logger = logging.getLogger('eval')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None, help='checkpoint (.pt) holding the model state under "model"')
    parser.add_argument('--dataset', default='h36m-p2', choices=DATASETS, help='benchmark to evaluate on')
    parser.add_argument('--dataset_file', default=None,
                        help='annotation npz overriding the one from core.path_config (e.g. a synthetic set)')
    parser.add_argument('--image_dir', default=None, help='image root overriding the one from core.path_config')
    parser.add_argument('--batch_size', type=int, default=32, help='images per batch')
    parser.add_argument('--log_freq', type=int, default=50, help='print running errors every this many batches')
    parser.add_argument('--result_file', default=None,
                        help='also save predictions: npz (pred_joints, pose, betas, camera) plus a .mat')
    parser.add_argument('--mask_dir', default=None,
                        help='lsp only: root of the UP-3D masks and part labels (default: the upi-s1h root of '
                             'core.path_config)')
    parser.add_argument('--json_file', default=None,
                        help='results JSON (default: results/eval_<dataset>.json)')
    parser.add_argument('--eval_pve', action='store_true',
                        help='report PVE; for h36m-p2 this switches to the MoSh file h36m_mosh_valid_p2.npz')
    parser.add_argument('--shuffle', action='store_true', help='shuffle the samples')
    add_model_run_args(parser)
    return parser.parse_args(argv)


def add_model_run_args(parser: argparse.ArgumentParser) -> None:
    """The flags every evaluation script shares: data-loader workers, model config and overrides, device."""
    parser.add_argument('--num_workers', type=int, default=min(8, os.cpu_count() or 1), help='data loader workers')
    parser.add_argument('--cfg_file', default=None,
                        help='model configuration (yaml; default configs/pymaf_config.yaml of the repository)')
    parser.add_argument('--misc', nargs='*', default=None, help='config overrides as KEY VALUE pairs')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda when available, else cpu)')
    parser.add_argument('--bad_sample_policy', default='skip', choices=('skip', 'stop'),
                        help='a sample that cannot be used (missing image, non-finite annotation): skip and count '
                             'it (reported in the results), or stop with an error')
    add_backend_args(parser, precision='fp32')  # metrics exactly the network's; bf16 one flag away


def check_model_run_args(args: argparse.Namespace) -> torch.device:
    """Check the shared flags before any work; returns the device. Raises `utils.cli.UserError`."""
    from core.cfgs import update_cfg

    cli.check_min('--batch_size', args.batch_size)
    cli.check_min('--num_workers', args.num_workers, 0)
    device = cli.check_device(args.device)
    check_backend(args.backend, args.precision, device)
    if args.checkpoint:
        cli.check_input_file(args.checkpoint, '--checkpoint', 'checkpoint')
    if args.cfg_file:
        cli.check_input_file(args.cfg_file, '--cfg_file', 'config file')
    update_cfg(args.cfg_file, args.misc)
    if getattr(args, 'dataset_file', None):
        cli.check_input_file(args.dataset_file, '--dataset_file', 'annotation file')
    if getattr(args, 'image_dir', None):
        cli.check_input_dir(args.image_dir, '--image_dir', 'image folder')
    return device


def main(args: argparse.Namespace) -> dict:
    from datasets.base_dataset import BaseDataset

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    device = check_model_run_args(args)
    cli.check_min('--log_freq', args.log_freq, 0)
    json_file = args.json_file or os.path.join('results', f'eval_{args.dataset}.json')
    cli.check_writable_file(json_file, '--json_file')
    if args.result_file:
        if args.dataset == 'lsp':
            raise cli.InputError('--result_file is only available for the 3D benchmarks', 'drop it for lsp')
        cli.check_writable_file(args.result_file, '--result_file')
        cli.check_writable_file(args.result_file + '.mat', '--result_file')
    if args.dataset == 'lsp' and args.mask_dir is not None:
        cli.check_input_dir(args.mask_dir, '--mask_dir', 'mask folder')
    data_name = eval_data_name(args.dataset, args.eval_pve)
    if data_name != args.dataset:
        print(f'Note: PVE is not available for {args.dataset}; evaluating on {data_name} instead.')
    dataset = BaseDataset(data_name, is_train=False, npz_path=args.dataset_file, img_dir=args.image_dir)
    model = make_backend(load_model(args.checkpoint, device, cfg_file=args.cfg_file, misc=args.misc), device,
                         args.backend, args.precision, checkpoint=args.checkpoint)
    smpl_models, j_regressor = load_eval_assets(device)
    evaluator = build_evaluator(args.dataset, smpl_models, j_regressor, eval_pve=args.eval_pve,
                                mask_dir=args.mask_dir, with_parts=dataset.partname is not None)
    results = run_evaluation(model, args.dataset, dataset, device, evaluator, batch_size=args.batch_size,
                             num_workers=args.num_workers, shuffle=args.shuffle, log_freq=args.log_freq,
                             bad_sample_policy=args.bad_sample_policy)
    print(format_table(args.dataset, results))
    if evaluator.per_action:
        print('per-action PA-MPJPE (mm):')
        for action, avg in sorted(evaluator.per_action.items()):
            print(f'  {action:16s} {avg.mean:.2f}')

    report = {
        'dataset': args.dataset,
        'annotation_file': str(dataset.npz_path),
        **model_record(args.checkpoint, cfg_file=args.cfg_file, misc=args.misc),
        'protocol': protocol_description(args.dataset),
        'bad_sample_policy': args.bad_sample_policy,
        'inference': model.describe(),
        'results': results,
        'per_action_pa_mpjpe_mm': {k: v.mean for k, v in evaluator.per_action.items()},
    }
    if args.result_file:
        evaluator.save_predictions(args.result_file)
    cli.atomic_write(json_file, lambda f: json.dump(report, f, indent=2), mode='w')
    print(f'results written to {json_file}')
    return report


if __name__ == '__main__':
    sys.exit(cli.run_main(lambda: main(parse_args()), prog='eval.py'))
