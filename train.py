"""Train PyMAF (see docs/training.md).

    # stage 1: Human3.6M only
    python3 train.py --regressor pymaf_net --single_dataset --single_dataname h36m --misc TRAIN.BATCH_SIZE 64
    # stage 2: the mixed datasets, from the stage-1 checkpoint
    python3 train.py --regressor pymaf_net --pretrained_checkpoint logs/.../checkpoints/model_best.pt \\
        --misc TRAIN.BATCH_SIZE 64
    # continue an interrupted run
    python3 train.py --resume --log_dir logs/pymaf_res50_mix/<experiment>
    # several GPUs / machines
    torchrun --nproc_per_node 4 train.py --single_dataset --single_dataname h36m
    # on the synthetic data the project renders itself (tools/make_synthetic_dataset.py --split train)
    python3 train.py --single_dataset --single_dataname synthetic --eval_dataset synthetic --device cpu
"""
from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> dict:
    """Run training with train.py's command line; returns the last validation results (rank 0)."""
    import torch.distributed as dist

    from core import cfgs
    from core.train_options import parse_train_args
    from core.trainer import Trainer, log_dir_checkpoint
    from utils import train_utils

    options = parse_train_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if options.resume:
        from pathlib import Path

        log_dir_checkpoint(options.log_dir)
        saved_cfg = Path(options.log_dir) / 'cfg.yaml'
        if not saved_cfg.is_file():
            raise FileNotFoundError(f'--resume: {saved_cfg} not found; --log_dir must be the experiment folder')
        options.cfg_file = str(saved_cfg)
    cfg = cfgs.load_cfg(options.cfg_file, options.misc)
    info = train_utils.init_distributed(**options.distributed_setup())
    try:
        log_dir = train_utils.prepare_log_dir(cfg, options.log_dir, options.as_dict(), resume=options.resume,
                                              single_dataset=options.single_dataset,
                                              exp_name=options.exp_name) if info.is_main else None
        if log_dir is not None:
            cfg.defrost()
            cfg.LOGDIR = str(log_dir)
        trainer = Trainer(options, cfg, info, log_dir)
        results = trainer.fit()
        if info.is_main:
            print(f'training stopped at epoch {trainer.epoch}, step {trainer.step}; skipped {trainer.skipped}; '
                  f'checkpoints in {log_dir / "checkpoints"}')
        return results
    finally:
        if info.distributed:
            dist.destroy_process_group()


def cli() -> int:
    """Console entry: one-line errors for user mistakes and missing files."""
    from core.trainer import BadDataError
    from utils.saver import CheckpointError

    try:
        main()
    except (FileNotFoundError, FileExistsError, CheckpointError, BadDataError, ValueError, KeyError) as err:
        print(f'train.py: error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('train.py: aborted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(cli())
