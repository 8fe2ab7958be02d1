"""Command-line options of train.py: the original's flags plus a few of this implementation's, parsed into
`TrainOptions` (plain values; the trainer never sees the argparse namespace).

Hyper-parameters that the original kept in the config (batch size, workers, learning rate, loss weights,
feedback iterations) stay there and are changed with ``--misc KEY VALUE ...`` (the last flag).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from utils import cli


@dataclasses.dataclass
class TrainOptions:
    """train.py's options as plain values; each flag's meaning and default are in `build_parser`
    (``TrainOptions.defaults()`` gives the defaults). Hyper-parameters live in the config instead."""

    resume: bool
    device: str | None
    log_dir: str
    exp_name: str | None
    pretrained_checkpoint: str | None
    num_epochs: int
    max_steps: int
    regressor: str
    cfg_file: str | None
    img_res: int
    rot_factor: float
    noise_factor: float
    scale_factor: float
    openpose_train_weight: float
    gt_train_weight: float
    eval_dataset: str
    eval_pve: bool
    single_dataset: bool
    single_dataname: str
    overwrite: bool
    train_npz: str | None
    train_img_dir: str | None
    eval_npz: str | None
    eval_img_dir: str | None
    distributed: bool
    dist_backend: str | None
    dist_url: str
    world_size: int
    rank: int
    local_rank: int
    multiprocessing_distributed: bool
    misc: list[str] | None

    @classmethod
    def defaults(cls, **changes) -> TrainOptions:
        """The command line's defaults, with ``changes`` applied."""
        return dataclasses.replace(cls(**vars(build_parser().parse_args([]))), **changes)

    def as_dict(self) -> dict:
        """The options as a JSON-serialisable dict (what ``args.json`` of a run holds)."""
        return dataclasses.asdict(self)

    def distributed_setup(self) -> dict:
        """Keyword arguments of `utils.train_utils.init_distributed`."""
        return {'device': self.device, 'world_size': self.world_size, 'rank': self.rank,
                'local_rank': self.local_rank, 'distributed': self.distributed,
                'dist_backend': self.dist_backend, 'dist_url': self.dist_url}


def build_parser() -> argparse.ArgumentParser:
    """The train.py argument parser."""
    parser = cli.ArgumentParser(description='Train PyMAF (see docs/training.md).')
    gen = parser.add_argument_group('General')
    gen.add_argument('--resume', action='store_true',
                     help='continue the run in --log_dir (an experiment folder holding cfg.yaml and checkpoints/)')
    gen.add_argument('--device', default=None,
                     help='torch device (default: cuda when available, else cpu; under torchrun: cuda:<local rank>)')

    io = parser.add_argument_group('io')
    io.add_argument('--log_dir', default='logs', help='log root (with --resume: the experiment folder)')
    io.add_argument('--exp_name', default=None,
                    help='experiment folder name (default: the original\'s pattern with a timestamp)')
    io.add_argument('--pretrained_checkpoint', default=None,
                    help='initialise the model from this checkpoint\'s weights (strict), e.g. the stage-1 result')

    train = parser.add_argument_group('Training Options')
    train.add_argument('--num_epochs', type=int, default=60, help='number of epochs (an upper bound)')
    train.add_argument('--max_steps', type=int, default=0,
                       help='stop (saving a checkpoint) after this many optimisation steps in total; 0: no limit')
    train.add_argument('--regressor', default='pymaf_net', choices=['pymaf_net', 'hmr'], help='model to train')
    train.add_argument('--cfg_file', default=None,
                       help='config yaml (default: configs/pymaf_config.yaml of the repository)')
    train.add_argument('--img_res', type=int, default=224, help='crop side in pixels')
    train.add_argument('--rot_factor', type=float, default=30, help='rotation augmentation, degrees (x N(0,1))')
    train.add_argument('--noise_factor', type=float, default=0.4, help='per-channel colour scale in [1-f, 1+f]')
    train.add_argument('--scale_factor', type=float, default=0.25, help='box scale augmentation (1 + N(0,1) f)')
    train.add_argument('--openpose_train_weight', type=float, default=0.0, help='weight of the 25 OpenPose joints')
    train.add_argument('--gt_train_weight', type=float, default=1.0, help='weight of the 24 ground-truth joints')
    train.add_argument('--eval_dataset', default='3dpw',
                       help='validation set evaluated after every epoch (an eval.py dataset name, or "none")')
    train.add_argument('--eval_pve', action='store_true', help='also report PVE on the validation set')
    train.add_argument('--single_dataset', action='store_true', help='train on one dataset, not the mixture')
    train.add_argument('--single_dataname', default='coco-full', help='the dataset of --single_dataset')
    train.add_argument('--overwrite', action='store_true',
                       help='keep only model_latest.pt and model_best.pt (no per-epoch copies)')
    train.add_argument('--train_npz', default=None,
                       help='annotation file of --single_dataset, overriding core.path_config (e.g. a synthetic set)')
    train.add_argument('--train_img_dir', default=None, help='image root of --train_npz')
    train.add_argument('--eval_npz', default=None, help='annotation file of the validation set (overrides the default)')
    train.add_argument('--eval_img_dir', default=None, help='image root of --eval_npz')

    dist = parser.add_argument_group('Distributed (usually set by torchrun; see docs/training.md)')
    dist.add_argument('--distributed', action='store_true',
                      help='use torch.distributed (implied when torchrun sets WORLD_SIZE > 1)')
    dist.add_argument('--dist_backend', default=None, help='nccl (default on GPUs) or gloo (default on CPU)')
    dist.add_argument('--dist_url', default='env://', help='init method (torchrun: env://)')
    dist.add_argument('--world_size', type=int, default=1, help='number of processes (torchrun sets WORLD_SIZE)')
    dist.add_argument('--rank', type=int, default=0, help='global rank (torchrun sets RANK)')
    dist.add_argument('--local_rank', type=int, default=0, help='rank on this machine (torchrun sets LOCAL_RANK)')
    dist.add_argument('--multiprocessing_distributed', action='store_true',
                      help='accepted for compatibility: one process per GPU, launched by torchrun')

    parser.add_argument('--misc', default=None, nargs=argparse.REMAINDER,
                        help='config overrides KEY VALUE ... (must be the last flag)')
    return parser


def parse_train_args(argv: list[str] | None = None) -> TrainOptions:
    """Parse train.py's command line.

    With ``--resume`` the options of the run being continued (``<log_dir>/args.json``) are the defaults, so
    ``train.py --resume --log_dir <experiment>`` alone continues it as it was started; flags given now win.
    """
    args = build_parser().parse_args(argv)
    if not args.resume:
        return TrainOptions(**vars(args))
    saved_file = Path(args.log_dir) / 'args.json'
    if not saved_file.is_file():
        raise FileNotFoundError(f'--resume: {saved_file} not found; --log_dir must be the experiment folder of '
                                'the run to continue (it holds args.json, cfg.yaml and checkpoints/)')
    with open(saved_file) as f:
        saved = json.load(f)
    unset = object()
    only_given = build_parser()
    only_given.set_defaults(**{name: unset for name in vars(args)})
    given = {k: v for k, v in vars(only_given.parse_args(argv)).items() if v is not unset}
    merged = vars(args)
    merged.update({k: v for k, v in saved.items() if k in merged and k not in ('resume', 'log_dir', 'misc')})
    merged.update(given)
    return TrainOptions(**merged)
